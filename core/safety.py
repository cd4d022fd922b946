"""The safety checker: shipped with the template, never taken from the trained weights.

The trainer saves no checker (replicate/dreambooth did the same, which silently disabled
filtering in dream-templates). Here the template loads its own from
`template-weights/safety-checker/`; flagged images are dropped with a log line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.errors import WeightsMissingError

log = logging.getLogger(__name__)


class SafetyChecker:
    def __init__(self, directory: Path, device: str = "cpu", dtype=torch.float32):
        from diffusers.pipelines.stable_diffusion.safety_checker import (
            StableDiffusionSafetyChecker,
        )
        from transformers import CLIPImageProcessor

        self.model = (
            StableDiffusionSafetyChecker.from_pretrained(
                directory, use_safetensors=True, dtype=dtype
            )
            .to(device)
            .eval()
        )
        self.processor = CLIPImageProcessor.from_pretrained(directory)
        self.device, self.dtype = device, dtype

    @torch.no_grad()
    def flags(self, images: list[Image.Image]) -> list[bool]:
        """Which images are flagged; a batch of images goes through the model in one pass."""
        pixels = self.processor(images, return_tensors="pt").pixel_values
        _, nsfw = self.model(
            clip_input=pixels.to(self.device, self.dtype), images=[np.asarray(i) for i in images]
        )
        return [bool(flag) for flag in nsfw]

    def flagged(self, image: Image.Image) -> bool:
        return self.flags([image])[0]


def load(directory: Path, device: str = "cpu", dtype=torch.float32) -> SafetyChecker | None:
    if not (Path(directory) / "config.json").is_file():
        return None
    return SafetyChecker(directory, device, dtype)


def missing_error(directory: Path) -> WeightsMissingError:
    return WeightsMissingError(
        f"The safety checker is missing ({directory}). Run `script/download-weights template "
        "<name>` before building the template, or set disable_safety_check to generate unfiltered."
    )
