"""DreamBooth (Ruiz et al. 2022): fine-tune the whole UNet, and optionally the text encoder(s).

SD1.5 exports the complete pipeline (diffusers `save_pretrained`, safetensors, no safety
checker). SDXL exports the UNet alone as cog-sdxl does (`unet.safetensors`, the diffusers state
dict that its predictor loads over the base), beside the new tokens of its pivotal tuning.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.manifest import Method, Part
from trainer.methods.base import TEXT_ENCODER, Trainable, TrainingMethod

UNET_FILE = "unet.safetensors"  # cog-sdxl's name


class FullFineTune(Trainable):
    key = "full"

    def __init__(
        self,
        train_text_encoder: bool,
        learning_rate: float,
        text_encoders: tuple[str, ...] = (TEXT_ENCODER,),
        unet_only_export: bool = False,
    ):
        self.train_text_encoder, self.learning_rate = train_text_encoder, learning_rate
        self.text_encoders, self.unet_only_export = text_encoders, unet_only_export

    def modules(self) -> tuple[str, ...]:
        return ("unet", *self.text_encoders) if self.train_text_encoder else ("unet",)

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
        return tuple(Part(name) for name in self.modules())

    def export(self, pipeline, directory: Path, dtype: torch.dtype) -> dict:
        if not self.unet_only_export:
            pipeline.save_pretrained(directory, safe_serialization=True)
            return {}
        from safetensors.torch import save_file

        unet = pipeline.unet.state_dict()
        state = {k: v.detach().to(dtype).contiguous() for k, v in unet.items()}
        save_file(state, directory / UNET_FILE)
        return {"unet": UNET_FILE}


def full(cfg, components: dict, side) -> TrainingMethod:
    part = FullFineTune(cfg.train_text_encoder, cfg.learning_rate, side.text_encoders)
    return TrainingMethod("full", Method.DREAMBOOTH, components, [part], side)
