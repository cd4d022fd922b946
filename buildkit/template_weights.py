"""Download a ControlNet template's own weights, in the layout core/ loads (see core/weights.py).

template-weights/controlnet/   the spec's ControlNet, fp16, safetensors
template-weights/annotator/    the annotator's files from its hub repository; seg: upernet/
                               re-saved as safetensors so the template never loads a pickle
"""

from __future__ import annotations

from pathlib import Path

from core import families
from core.controls import CONTROLS, AnnotatorKind
from templates.specs import TEMPLATES


def download_control_weights(name: str, directory: Path, token: str | None) -> None:
    from buildkit.download_weights import explain

    spec = TEMPLATES.get(name)
    if spec is None:
        raise SystemExit(f"unknown template {name!r}; choose one of {', '.join(TEMPLATES)}")
    if spec.control is None:
        return
    control = CONTROLS[spec.control]
    repo = families.of(spec.family).controlnets[spec.control.value]  # SD1.5's or SDXL's
    try:
        _controlnet(repo, directory / "controlnet", token)
        _annotator(control, directory / "annotator", token)
    except SystemExit:
        raise
    except Exception as error:
        raise explain(error, f"the {name} weights") from None


def _controlnet(repo: str, directory: Path, token: str | None) -> None:
    import torch
    from diffusers import ControlNetModel

    model = ControlNetModel.from_pretrained(repo, dtype=torch.float16, token=token)
    model.save_pretrained(directory, safe_serialization=True)


def _annotator(control, directory: Path, token: str | None) -> None:
    from huggingface_hub import hf_hub_download

    directory.mkdir(parents=True, exist_ok=True)
    if control.annotator is AnnotatorKind.UPERNET:
        from transformers import AutoImageProcessor, UperNetForSemanticSegmentation

        folder = directory / "upernet"
        repo = control.annotator_repo
        network = UperNetForSemanticSegmentation.from_pretrained(repo, token=token)
        network.save_pretrained(folder, safe_serialization=True)
        AutoImageProcessor.from_pretrained(repo, token=token).save_pretrained(folder)
        return
    for filename in control.annotator_files:
        hf_hub_download(control.annotator_repo, filename, local_dir=directory, token=token)
