"""DreamBooth (Ruiz et al. 2022): fine-tune the whole UNet, and optionally the text encoder."""

from __future__ import annotations

import torch
from torch import nn

from core.manifest import Method, Part
from trainer.methods.base import TrainingMethod


class DreamBooth(TrainingMethod):
    method = Method.DREAMBOOTH

    def __init__(self, components: dict, train_text_encoder: bool):
        super().__init__(components)
        self.train_text_encoder = train_text_encoder
        self.components["unet"].requires_grad_(True)
        self.components["unet"].train()
        if train_text_encoder:
            self.components["text_encoder"].requires_grad_(True)
            self.components["text_encoder"].train()
        self._frozen_cache: dict[tuple[int, ...], torch.Tensor] = {}

    def trainable(self) -> dict[str, nn.Module]:
        names = ["unet", "text_encoder"] if self.train_text_encoder else ["unet"]
        return {name: self.components[name] for name in names}

    def trained_parts(self) -> tuple[Part, ...]:
        return (Part.UNET, Part.TEXT_ENCODER) if self.train_text_encoder else (Part.UNET,)

    def text_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        encoder = self.components["text_encoder"]
        device = self.unet_device()
        if self.train_text_encoder:
            return encoder(input_ids.to(device))[0]
        # Frozen: each distinct caption is encoded once, keyed by its ids on the host (no
        # device sync). Padding to the batch's longest caption only appends end-of-text
        # tokens, which the causal encoder never attends back from.
        rows = []
        for ids in input_ids.tolist():
            key = tuple(ids)
            if key not in self._frozen_cache:
                with torch.no_grad():
                    row = torch.tensor([ids], device=device)
                    self._frozen_cache[key] = encoder(row)[0][0]
            rows.append(self._frozen_cache[key])
        return torch.stack(rows)
