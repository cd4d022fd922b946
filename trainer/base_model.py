"""The model training starts from: `$BASE_MODEL_DIR` (diffusers layout), or `ckpt_base`.

`script/download-weights` puts SD1.5 (+ the ft-MSE VAE) in `base-weights/`; for offline work
`script/make-tiny-weights base-weights` writes a tiny random-weight model of the same layout.
`ckpt_base` is a single-file `.safetensors` checkpoint of the same architecture; its components
are configured from the base folder, so nothing is fetched from the hub.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from core import families
from core.errors import UserError, WeightsMissingError
from core.families import FamilySpec
from core.fingerprint import fingerprint_dir, fingerprint_file
from core.manifest import Family, Manifest
from core.safetensors_file import read_header

log = logging.getLogger(__name__)
DEFAULT_BASE_DIR = "base-weights"


def base_model_dir() -> Path:
    return Path(os.environ.get("BASE_MODEL_DIR", DEFAULT_BASE_DIR))


@dataclass
class BaseModel:
    """The loaded components plus what identifies them (for caches and the manifest)."""

    pipeline: object  # a diffusers pipeline holding every component
    name: str
    fingerprint: str
    family: Family
    components: dict = field(default_factory=dict)  # one stable dict of the same modules

    def __post_init__(self) -> None:
        self.components = dict(self.pipeline.components)

    @property
    def spec(self) -> FamilySpec:
        return families.of(self.family)


def describe_base(directory: Path, wanted: Family | None = None) -> tuple[str, Family]:
    """Check the folder is a usable base and say what it is, without loading weights.

    The family is read from model_index.json (core/families.py); a trainer of one family
    (`wanted`) refuses a base of another before anything is loaded.
    """
    if not (directory / families.MODEL_INDEX).is_file():
        flag = "" if wanted in (None, Family.SD15) else f" --family {wanted.value}"
        raise WeightsMissingError(
            f"No base model at {directory.resolve()} (BASE_MODEL_DIR): model_index.json is "
            f"missing. Run `script/download-weights base{flag}` (real weights; needs network) or "
            f"`script/make-tiny-weights base-weights{flag}` (tiny, offline)."
        )
    try:
        spec = families.detect(directory)
    except families.FamilyError as error:
        raise WeightsMissingError(str(error)) from None
    if wanted is not None and spec.family is not wanted:
        raise WeightsMissingError(
            f"The base model in {directory.name}/ is {spec.label} ({spec.base_class}), but this "
            f"trainer trains {families.of(wanted).label}: point BASE_MODEL_DIR at an "
            f"{families.of(wanted).label} base"
        )
    return spec.base_class, spec.family


@dataclass(frozen=True)
class BaseRef:
    """Which base a run starts from, identified once (a ckpt_base is hashed a single time)."""

    directory: Path
    ckpt_base: Path | None
    class_name: str
    name: str
    fingerprint: str
    family: Family


def identify(directory: Path, ckpt_base: Path | None, wanted: Family | None = None) -> BaseRef:
    """The base a run will start from: the folder, or `ckpt_base` configured from it."""
    class_name, family = describe_base(directory, wanted)
    if ckpt_base is not None:
        check_checkpoint(ckpt_base, family)
        # configured from the folder (scheduler, tokenizer): both make the identity
        both = f"{fingerprint_dir(directory)}:{fingerprint_file(ckpt_base)}"
        fingerprint = hashlib.sha256(both.encode()).hexdigest()[:16]
        return BaseRef(directory, ckpt_base, class_name, ckpt_base.name, fingerprint, family)
    manifest = Manifest.read(directory)
    name = manifest.base if manifest else directory.resolve().name
    return BaseRef(directory, None, class_name, name, fingerprint_dir(directory), family)


# Key prefix of the UNet in original-layout (LDM) single-file checkpoints, of every family.
UNET_PREFIX = "model.diffusion_model."


def check_checkpoint(path: Path, family: Family) -> None:
    """A ckpt_base must be a complete safetensors file holding a checkpoint of this family."""
    keys = read_header(path, label="ckpt_base").keys
    found, spec = families.of_checkpoint(keys), families.of(family)
    if found is not None and found is not spec:
        raise UserError(
            f"ckpt_base: {path.name} is an {found.label} checkpoint, but this trainer's base is "
            f"{spec.label}"
        )
    if not any(k.startswith(UNET_PREFIX) for k in keys):
        sample = ", ".join(sorted(keys)[:3]) or "none"
        raise UserError(
            f"ckpt_base: {path.name} is missing the UNet weights of an {spec.label} "
            f"checkpoint (no {UNET_PREFIX}* tensors; found {len(keys)} tensors such as "
            f"{sample}). Expected a single-file checkpoint in the original layout, as "
            "Automatic1111 and Civitai share them."
        )


def _as_safetensors_name(path: Path, scratch: Path) -> Path:
    """diffusers picks its loader by file name: uploads arrive as `…file.bin` or no suffix."""
    if path.suffix == ".safetensors":
        return path
    scratch.mkdir(parents=True, exist_ok=True)
    link = scratch / "ckpt_base.safetensors"
    link.unlink(missing_ok=True)
    link.symlink_to(path.resolve())
    return link


def load(ref: BaseRef, scratch: Path) -> BaseModel:
    """Load the base; `scratch` (in the run's directory) may hold a link to the ckpt_base."""
    import diffusers

    pipeline_class = getattr(diffusers, ref.class_name)
    if ref.ckpt_base is None:
        pipeline = pipeline_class.from_pretrained(
            ref.directory,
            safety_checker=None,
            requires_safety_checker=False,
            local_files_only=True,
            use_safetensors=True,
        )
    else:
        log.info("loading ckpt_base %s with configs from %s", ref.name, ref.directory)
        pipeline = pipeline_class.from_single_file(
            str(_as_safetensors_name(ref.ckpt_base, scratch)),
            config=str(ref.directory.resolve()),
            local_files_only=True,
            safety_checker=None,
            requires_safety_checker=False,
        )
    pipeline.set_progress_bar_config(disable=True)
    return BaseModel(
        pipeline=pipeline, name=ref.name, fingerprint=ref.fingerprint, family=ref.family
    )
