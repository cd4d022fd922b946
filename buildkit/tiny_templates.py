"""A template's own weights (template-weights/ layout), random, offline: tiny or real-shape.

safety-checker/   the real checker class; flags nothing (or, for tests, everything)
controlnet/       a ControlNet whose control image really matters (ControlNet templates)
refiner/          a tiny SDXL refiner (the sdxl template; `refiner=False` leaves it out)
annotator/        random-weight annotator files under their real names (buildkit/tiny_annotators.py)

`shape="sd15"` gives the ControlNet and the checker their real SD1.5 / CLIP ViT-L/14 shapes (for
benchmarks and GPU tests, where their cost matters); annotators are the real classes either way.
"""

from __future__ import annotations

from pathlib import Path

import torch

from buildkit.tiny import write_controlnet, write_safety_checker, write_sdxl_refiner
from buildkit.tiny_annotators import write_annotator
from core.manifest import Family
from templates.specs import TEMPLATES


def real_shape_controlnet(seed: int = 0):
    """ControlNet 1.1's shape (from SD1.5's UNet), random, with its zero convolutions randomised
    so that the control image changes the output."""
    from diffusers import ControlNetModel

    from buildkit.real_shape import sd15_unet

    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(sd15_unet())
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, tensor in controlnet.state_dict().items():
            if "controlnet_" in name and not tensor.any():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.01)
    return controlnet


def real_shape_safety_checker(seed: int = 0):
    """StableDiffusionSafetyChecker at CLIP ViT-L/14's shape, flagging nothing."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPVisionConfig

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_attention_heads=16,
        num_hidden_layers=24,
        image_size=224,
        patch_size=14,
        projection_dim=768,
    )
    config = CLIPConfig(vision_config=vision.to_dict(), projection_dim=768)
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(1.0)  # cos - 1 > 0 never holds
        checker.special_care_embeds_weights.fill_(1.0)
    return checker


def _write_real_shape(directory: Path, control: bool) -> None:
    from transformers import CLIPImageProcessor

    checker = directory / "safety-checker"
    real_shape_safety_checker().save_pretrained(checker, safe_serialization=True)
    CLIPImageProcessor(crop_size=224, size=224).save_pretrained(checker)
    if control:
        real_shape_controlnet().save_pretrained(directory / "controlnet", safe_serialization=True)


def write_template_weights(
    name: str,
    directory: Path,
    flag_everything: bool = False,
    shape: str = "tiny",
    refiner: bool = True,
) -> Path:
    spec = TEMPLATES[name]
    directory = Path(directory)
    if spec.family is Family.SDXL and refiner:
        write_sdxl_refiner(directory / "refiner")
    if shape == "sd15":
        _write_real_shape(directory, spec.control is not None)
    else:
        write_safety_checker(directory / "safety-checker", flag_everything=flag_everything)
        if spec.control is not None:
            write_controlnet(directory / "controlnet", family=spec.family.value)
    if spec.control is not None:
        write_annotator(spec.control, directory / "annotator")
    return directory
