"""Where a template's weights are, and whether they are usable.

    $WEIGHTS_DIR           (default weights/, /src/weights in the image) the SD weights: the
                           trainer's output.zip unzipped (diffusers folder + manifest.json), or a
                           plain diffusers folder. Copied in by the build step.
    $TEMPLATE_WEIGHTS_DIR  (default template-weights/) the template's own: safety-checker/,
                           controlnet/, annotator/. Fetched by script/download-weights.

Safetensors only: a component whose weights exist only as a pickle is refused, by name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError, WeightsMissingError
from core.manifest import Family, Manifest

PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": Family.SD15,
    "StableDiffusionXLPipeline": Family.SDXL,
}
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")
TEMPLATE_MESSAGE = (
    "This is a template: it has no Stable Diffusion weights yet. Copy weights to /src/weights "
    "(the trainer's output.zip, unzipped) at build time, or set WEIGHTS_DIR to such a folder."
)


def weights_dir() -> Path:
    return Path(os.environ.get("WEIGHTS_DIR", "weights"))


def template_weights_dir() -> Path:
    return Path(os.environ.get("TEMPLATE_WEIGHTS_DIR", "template-weights"))


@dataclass(frozen=True)
class SDWeights:
    directory: Path
    family: Family
    manifest: Manifest | None

    @property
    def default_prompt(self) -> str | None:
        """The instance prompt the weights were trained with: from the manifest, else from the
        `args.json` that replicate/dreambooth wrote (as replicate/dreambooth-template read it)."""
        if self.manifest:
            return self.manifest.instance_prompt
        return _args_json_prompt(self.directory / "args.json")


def _args_json_prompt(path: Path) -> str | None:
    try:
        prompt = json.loads(path.read_text()).get("instance_prompt")
    except (OSError, ValueError, AttributeError):
        return None
    return prompt if isinstance(prompt, str) and prompt.strip() else None


def _check_safetensors(directory: Path, index: dict) -> None:
    for component, value in index.items():
        folder = directory / component
        if component.startswith("_") or not isinstance(value, list) or not folder.is_dir():
            continue
        pickles = [p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles and not list(folder.glob("*.safetensors")):
            raise UserError(
                f"{pickles[0]} is a pickle and this template loads safetensors only; save the "
                "weights with save_pretrained(..., safe_serialization=True)"
            )


def find(directory: Path | None = None) -> SDWeights | None:
    """The SD weights in `directory` (default $WEIGHTS_DIR), or None when there are none."""
    directory = Path(directory or weights_dir())
    index_path = directory / "model_index.json"
    if not index_path.is_file():
        return None
    index = json.loads(index_path.read_text())
    class_name = index.get("_class_name", "")
    if class_name not in PIPELINE_FAMILIES:
        raise UserError(
            f"{index_path}: _class_name {class_name!r} is not one of {', '.join(PIPELINE_FAMILIES)}"
        )
    _check_safetensors(directory, index)
    manifest = Manifest.read(directory)
    family = manifest.family if manifest else PIPELINE_FAMILIES[class_name]
    return SDWeights(directory, family, manifest)


def require(weights: SDWeights | None) -> SDWeights:
    if weights is None:
        raise WeightsMissingError(TEMPLATE_MESSAGE)
    return weights
