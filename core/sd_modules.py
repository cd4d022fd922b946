"""Load the Stable Diffusion modules of a checked weights folder, one part at a time.

Loading part by part lets every failure name its part. Beyond what core/weights.py checks from
headers, loading finds:
- a config that does not match its weights: diffusers raises on a shape mismatch, but
  transformers initialises missing tensors randomly and only logs it, so the loading report is
  read and any missing or mismatched tensor is refused;
- non-finite values (a training that diverged exports NaN weights, whose images are black):
  every tensor is checked once, on the device, at setup.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path

import torch

from core.errors import UserError
from core.weights import (
    REPLACE_HINT,
    SDWeights,
    broken,
    public,
    weight_files,
)

LIBRARIES = ("diffusers", "transformers")


def part_class(weights: SDWeights, part: str):
    library, name = weights.part_class(part)
    if library not in LIBRARIES:
        raise broken(weights.directory, "model_index.json", f"{part} comes from {library!r}")
    cls = getattr(importlib.import_module(library), name, None)
    if cls is None:
        raise broken(weights.directory, "model_index.json", f"{library} has no {name} ({part})")
    return cls


@contextmanager
def loading(weights: SDWeights, part: str):
    """Turn any failure while loading `part` into a BrokenWeightsError that names it."""
    try:
        yield
    except (UserError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as error:  # whatever the library raised: the part is what a user can act on
        mismatch = shape_mismatch(weights, part)
        if mismatch:
            raise broken(weights.directory, f"{part}/config.json", mismatch) from None
        reason = public(str(error) or type(error).__name__, weights.directory)
        raise broken(weights.directory, f"{part}/", f"could not be loaded ({reason})") from None


def shape_mismatch(weights: SDWeights, part: str) -> str | None:
    """How the part's config disagrees with its weights' shapes, read from the headers only."""
    from safetensors import safe_open

    try:
        cls = part_class(weights, part)
        with torch.device("meta"):
            if hasattr(cls, "from_config"):  # diffusers
                model = cls.from_config(cls.load_config(weights.directory / part))
            else:  # transformers
                model = cls(cls.config_class.from_pretrained(weights.directory / part))
        shapes = {}
        for path in weight_files(weights.directory, part):
            with safe_open(path, "pt") as file:
                shapes.update({k: file.get_slice(k).get_shape() for k in file.keys()})  # noqa: SIM118
    except Exception:  # the caller reports the library's own error instead
        return None
    for name, tensor in model.state_dict().items():
        if name in shapes and list(tensor.shape) != list(shapes[name]):
            return (
                f"does not match the weights: {name} is {list(shapes[name])} in the weights but "
                f"{list(tensor.shape)} in the config"
            )
    return None


def load_model(weights: SDWeights, part: str, device: str, dtype: torch.dtype):
    cls = part_class(weights, part)
    with loading(weights, part):
        model, report = cls.from_pretrained(
            weights.directory / part,
            dtype=dtype,
            use_safetensors=True,
            local_files_only=True,
            output_loading_info=True,
        )
    missing = sorted(report.get("missing_keys") or ())
    mismatched = sorted(_key(k) for k in report.get("mismatched_keys") or ())
    if missing or mismatched:
        names = missing or mismatched
        what = "missing from" if missing else "shaped differently in"
        raise broken(
            weights.directory,
            f"{part}/config.json",
            f"does not match the weights: {len(names)} tensors it describes are {what} the "
            f"weights (first: {names[0]})",
        )
    model = model.to(device).eval()
    check_finite(weights.directory, part, model)
    return model


def _key(entry) -> str:
    return str(entry[0] if isinstance(entry, (tuple, list)) else entry)


def check_finite(
    directory: Path, part: str, model: torch.nn.Module, hint: str = REPLACE_HINT
) -> None:
    """Refuse a module with any NaN or infinite value (one pass over its tensors)."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise broken(
                directory,
                f"{part}/",
                f"{bad:,} of the {tensor.numel():,} values of {name} are NaN or infinite: the "
                "training diverged; train again with a lower learning_rate",
                hint,
            )


def load_other(weights: SDWeights, part: str):
    cls = part_class(weights, part)
    with loading(weights, part):
        if part == "scheduler":
            return cls.from_config(cls.load_config(weights.directory / part))
        return cls.from_pretrained(weights.directory / part, local_files_only=True)


def load_modules(weights: SDWeights, device: str, dtype: torch.dtype) -> dict:
    """Every module the family's pipeline needs, keyed by its argument name."""
    modules = {part: load_model(weights, part, device, dtype) for part in weights.models}
    modules.update({part: load_other(weights, part) for part in weights.configs})
    return modules
