"""Load a weights folder with plain diffusers and generate one small image from it."""

from pathlib import Path

import torch
from PIL import Image


def generate(folder: Path, prompt: str = "a photo of sks cat") -> Image.Image:
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    return pipeline(
        prompt,
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
