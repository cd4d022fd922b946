"""DreamBooth (Ruiz et al. 2022): fine-tune the whole UNet, and optionally the text encoder.

Exports the complete pipeline (diffusers `save_pretrained`, safetensors, no safety checker).
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.manifest import Method, Part
from trainer.methods.base import TEXT_ENCODER, Trainable, TrainingMethod


class FullFineTune(Trainable):
    key = "full"

    def __init__(self, train_text_encoder: bool, learning_rate: float):
        self.train_text_encoder, self.learning_rate = train_text_encoder, learning_rate

    def modules(self) -> tuple[str, ...]:
        return ("unet", TEXT_ENCODER) if self.train_text_encoder else ("unet",)

    def prepare(self, components: dict, device, dtype) -> None:
        for name in self.modules():
            components[name].requires_grad_(True)

    def parameter_groups(self, components: dict, lr_scale: float) -> list[dict]:
        params = [p for name in self.modules() for p in components[name].parameters()]
        return [{"params": params, "lr": self.learning_rate * lr_scale, "input": "learning_rate"}]

    def state_dict(self, components: dict) -> dict[str, torch.Tensor]:
        return {
            f"{name}.{key}": tensor
            for name in self.modules()
            for key, tensor in components[name].state_dict().items()
        }

    def load_state_dict(self, components: dict, state: dict[str, torch.Tensor]) -> None:
        for name in self.modules():
            prefix = f"{name}."
            own = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            components[name].load_state_dict(own)

    def trained_parts(self) -> tuple[Part, ...]:
        return (Part.UNET, Part.TEXT_ENCODER) if self.train_text_encoder else (Part.UNET,)

    def export(self, pipeline, directory: Path, dtype: torch.dtype) -> dict:
        pipeline.save_pretrained(directory, safe_serialization=True)
        return {}


def full(cfg, components: dict) -> TrainingMethod:
    part = FullFineTune(cfg.train_text_encoder, cfg.learning_rate)
    return TrainingMethod("full", Method.DREAMBOOTH, components, [part])
