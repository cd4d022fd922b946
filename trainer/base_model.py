"""The model training starts from: `$BASE_MODEL_DIR` (diffusers layout), or `ckpt_base`.

`script/download-weights` puts SD1.5 (+ the ft-MSE VAE) in `base-weights/`; for offline work
`script/make-tiny-weights base-weights` writes a tiny random-weight model of the same layout.
`ckpt_base` is a single-file `.safetensors` checkpoint of the same architecture; its components
are configured from the base folder, so nothing is fetched from the hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import WeightsMissingError
from core.manifest import Family, Manifest
from core.safetensors_file import require_safetensors

log = logging.getLogger(__name__)
DEFAULT_BASE_DIR = "base-weights"
PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": Family.SD15,
    "StableDiffusionXLPipeline": Family.SDXL,
}


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


def describe_base(directory: Path) -> tuple[str, Family]:
    """Check the folder is a usable base and say what it is, without loading weights."""
    index = directory / "model_index.json"
    if not index.is_file():
        raise WeightsMissingError(
            f"No base model at {directory.resolve()} (BASE_MODEL_DIR): model_index.json is "
            "missing. Run `script/download-weights` (real SD1.5; needs network and a Hugging Face "
            "token) or `script/make-tiny-weights base-weights` (tiny, offline)."
        )
    class_name = json.loads(index.read_text()).get("_class_name", "")
    if class_name not in PIPELINE_FAMILIES:
        raise WeightsMissingError(
            f"{index}: _class_name {class_name!r} is not a supported base; "
            f"expected one of {', '.join(PIPELINE_FAMILIES)}"
        )
    return class_name, PIPELINE_FAMILIES[class_name]


def fingerprint_dir(directory: Path) -> str:
    """Identity of a weights folder from its configs and safetensors headers (not the weights).

    Cheap enough to compute on every run, and changes whenever a file is replaced.
    """
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        digest.update(str(path.relative_to(directory)).encode())
        stat = path.stat()
        digest.update(str(stat.st_size).encode())
        with path.open("rb") as stream:
            digest.update(stream.read(64 * 1024))
    return digest.hexdigest()[:16]


def fingerprint_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def identify(directory: Path, ckpt_base: Path | None) -> tuple[str, str, Family]:
    """(name, fingerprint, family) of the base a run will start from."""
    _, family = describe_base(directory)
    manifest = Manifest.read(directory)
    name = manifest.base if manifest else directory.resolve().name
    if ckpt_base is None:
        return name, fingerprint_dir(directory), family
    return ckpt_base.name, fingerprint_file(ckpt_base), family


def load(directory: Path, ckpt_base: Path | None = None) -> BaseModel:
    class_name, family = describe_base(directory)
    name, fingerprint, _ = identify(directory, ckpt_base)
    import diffusers

    pipeline_class = getattr(diffusers, class_name)
    if ckpt_base is None:
        pipeline = pipeline_class.from_pretrained(
            directory,
            safety_checker=None,
            requires_safety_checker=False,
            local_files_only=True,
            use_safetensors=True,
        )
    else:
        require_safetensors(ckpt_base, label="ckpt_base")
        log.info("loading ckpt_base %s with configs from %s", ckpt_base.name, directory)
        pipeline = pipeline_class.from_single_file(
            str(ckpt_base),
            config=str(directory.resolve()),
            local_files_only=True,
            safety_checker=None,
            requires_safety_checker=False,
        )
    pipeline.set_progress_bar_config(disable=True)
    return BaseModel(pipeline=pipeline, name=name, fingerprint=fingerprint, family=family)
