"""Where a template's weights are, and whether they are usable.

    $WEIGHTS_DIR           (default weights/, /src/weights in the image) the SD weights: the
                           trainer's output.zip unzipped (diffusers folder + manifest.json), or a
                           plain diffusers folder. Copied in by the build step.
    $BASE_WEIGHTS_DIR      (default base-weights/) the base an adapter output in $WEIGHTS_DIR
                           (lora, textual_inversion, pivotal) loads on top of: core/adapters.py
    $TEMPLATE_WEIGHTS_DIR  (default template-weights/) the template's own: safety-checker/,
                           controlnet/, annotator/. Fetched by script/download-weights.

`find()` checks everything that can be checked without loading a tensor: model_index.json and
manifest.json, that every part of the family is there, safetensors only (a component whose
weights exist only as a pickle is refused), and that no safetensors file is truncated. Loading
(core/sd_modules.py) checks the rest: configs against weights, and finite values. Every problem is
a BrokenWeightsError naming the folder by its name only, the part, and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from core import families
from core.errors import UserError, WeightsMissingError
from core.manifest import Family, Manifest, ManifestError
from core.safetensors_file import PICKLE_SUFFIXES, inspect

TEMPLATE_MESSAGE = (
    "This is a template: it has no Stable Diffusion weights yet. Copy weights to /src/weights "
    "(the trainer's output.zip, unzipped) at build time, or set WEIGHTS_DIR to such a folder."
)
REPLACE_HINT = (
    "Copy a complete output of the trainer (unzipped), or a diffusers folder of the family this "
    "template serves saved with safe_serialization=True, to /src/weights."
)


class BrokenWeightsError(UserError):
    """The weights folder is there, but a part of it cannot be used."""


def broken(directory: Path, part: str, problem: str, hint: str = REPLACE_HINT):
    """The one shape of every weights error: folder (by name), part, problem, what to do."""
    return BrokenWeightsError(
        f"The weights in {Path(directory).name}/ cannot be used: {part}: {problem}. {hint}"
    )


def public(text: str, directory: Path) -> str:
    """A library's message made fit for a user: its first line, no server path."""
    directory = Path(directory)
    line = (str(text).strip().splitlines() or [""])[0]
    for absolute in {str(directory.resolve()), str(directory.absolute()), str(directory)}:
        line = line.replace(absolute, directory.name)
    line = re.sub(r"(?<![\w.])/(?:[^\s'\"/]+/)*([^\s'\"/]+)", r"\1", line)  # other paths
    line = re.sub(r"torch\.Size\((\[[^\]]*\])\)", r"\1", line)
    return line[:300]


def weights_dir() -> Path:
    return Path(os.environ.get("WEIGHTS_DIR", "weights"))


def base_weights_dir() -> Path:
    return Path(os.environ.get("BASE_WEIGHTS_DIR", "base-weights"))


def template_weights_dir() -> Path:
    return Path(os.environ.get("TEMPLATE_WEIGHTS_DIR", "template-weights"))


@dataclass(frozen=True)
class SDWeights:
    directory: Path
    family: Family
    manifest: Manifest | None
    index: dict
    models: tuple[str, ...] = ()  # the parts with weights that were checked, to load
    configs: tuple[str, ...] = ()  # the parts with only configs, to load

    @property
    def default_prompt(self) -> str | None:
        """The instance prompt the weights were trained with: from the manifest, else from the
        `args.json` that replicate/dreambooth wrote (as replicate/dreambooth-template read it)."""
        if self.manifest:
            return self.manifest.instance_prompt
        return _args_json_prompt(self.directory / "args.json")

    @property
    def spec(self) -> families.FamilySpec:
        return families.of(self.family)

    def part_class(self, part: str) -> tuple[str, str]:
        """(library, class name) of a part, as model_index.json records it."""
        return tuple(self.index[part])


def _args_json_prompt(path: Path) -> str | None:
    try:
        prompt = json.loads(path.read_text()).get("instance_prompt")
    except (OSError, ValueError, AttributeError):
        return None
    return prompt if isinstance(prompt, str) and prompt.strip() else None


def read_json(directory: Path, relative: str) -> dict:
    path = Path(directory) / relative
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise broken(directory, relative, "is missing") from None
    except UnicodeDecodeError:
        raise broken(directory, relative, "is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise broken(directory, relative, f"is not valid JSON ({error.msg} at {where})") from None
    if not isinstance(data, dict):
        raise broken(directory, relative, "must hold a JSON object")
    return data


def _family(directory: Path, refiner: bool) -> families.FamilySpec:
    try:
        return families.detect(directory, refiner=refiner)
    except families.FamilyError as error:
        problem = str(error).split(": ", 1)[-1]
        raise broken(directory, "model_index.json", problem) from None


def read_manifest(directory: Path) -> Manifest | None:
    try:
        return Manifest.read(directory)
    except ManifestError as error:
        message = public(str(error), directory).removeprefix("manifest.json: ")
        message = message.removeprefix(f"{Path(directory).name}/manifest.json: ")
        raise broken(directory, "manifest.json", message) from None


def _check_family(
    directory: Path, spec: families.FamilySpec, manifest: Manifest | None, serves: tuple
) -> None:
    if spec.family not in serves:
        served = ", ".join(families.of(f).label for f in serves)
        others = ", ".join(families.of(f).label for f in families.FAMILIES if f not in serves)
        raise broken(
            directory,
            "model_index.json",
            f"these are {spec.label} weights and this template serves {served} only",
            f"Build a template for {others} with them, or copy {served} weights to /src/weights.",
        )
    if manifest and manifest.family is not spec.family:
        raise broken(
            directory,
            "manifest.json",
            f"family is {manifest.family.value} but model_index.json describes {spec.family.value}",
        )


def find(
    directory: Path | None = None,
    serves: tuple[Family, ...] = (Family.SD15,),
    *,
    models: tuple[str, ...] | None = None,
    configs: tuple[str, ...] | None = None,
    refiner: bool = False,
) -> SDWeights | None:
    """The SD weights in `directory` (default $WEIGHTS_DIR), checked; None when there are none.

    `serves`: the families the caller can load. `models` and `configs`: the parts to check and
    load (default every part of the family; a refiner shares the base's text encoder and VAE,
    so only its UNet and scheduler are its own).
    """
    directory = Path(directory or weights_dir())
    if not directory.is_dir() or not any(not p.name.startswith(".") for p in directory.iterdir()):
        return None
    index = read_json(directory, families.MODEL_INDEX)
    spec = _family(directory, refiner)
    manifest = read_manifest(directory)
    _check_family(directory, spec, manifest, serves)
    models = models or spec.model_parts
    configs = configs or spec.config_parts
    for part in (*models, *configs):
        _check_listed(directory, index, part)
    for part in models:
        read_json(directory, f"{part}/config.json")
        for path in weight_files(directory, part):
            check_safetensors(directory, path)
    return SDWeights(directory, spec.family, manifest, index, models, configs)


def _check_listed(directory: Path, index: dict, part: str) -> None:
    entry = index.get(part)
    if not (isinstance(entry, list) and len(entry) == 2 and all(entry)):
        raise broken(directory, "model_index.json", f"lists no {part}, which the pipeline needs")
    if not (directory / part).is_dir():
        raise broken(directory, f"{part}/", "is missing (model_index.json lists it)")


def weight_files(directory: Path, part: str) -> list[Path]:
    """The safetensors files of a part (every shard, when it is sharded)."""
    folder = directory / part
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        shards = read_json(directory, f"{part}/{indexes[0].name}").get("weight_map", {})
        files = [folder / name for name in sorted(set(shards.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing or not files:
            problem = f"{missing[0]} is missing" if missing else "lists no shards"
            raise broken(directory, f"{part}/{indexes[0].name}", problem)
        return files
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise broken(
            directory,
            f"{part}/{pickles[0]}",
            "is a pickle and this template loads safetensors only (pickles can run code "
            "when loaded); save the weights with save_pretrained(..., safe_serialization=True)",
        )
    raise broken(directory, f"{part}/", "has no .safetensors weights")


def check_safetensors(directory: Path, path: Path) -> None:
    """The file is a safetensors file holding every byte its header promises."""
    _, problem = inspect(path)
    if problem:
        raise broken(directory, f"{path.parent.name}/{path.name}", problem)


def require(weights: SDWeights | None) -> SDWeights:
    if weights is None:
        raise WeightsMissingError(TEMPLATE_MESSAGE)
    return weights
