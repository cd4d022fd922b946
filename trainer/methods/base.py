"""A training method is a strategy over the one loop: which parameters train, how they are saved.

The loop (trainer/loop.py) owns the optimizer, schedule, precision, checkpoints and progress; a
method only says what the UNet is conditioned on and which modules change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from core.manifest import Method, Part


class TrainingMethod(ABC):
    method: Method

    def __init__(self, components: dict):
        self.components = dict(components)
        for module in ("vae", "unet", "text_encoder"):
            self.components[module].requires_grad_(False)

    @abstractmethod
    def trainable(self) -> dict[str, nn.Module]:
        """The modules whose parameters train, by component name (also what is checkpointed)."""

    @abstractmethod
    def trained_parts(self) -> tuple[Part, ...]:
        """What the manifest records as changed."""

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.trainable().values() for p in m.parameters() if p.requires_grad]

    def use(self, prepared: dict[str, nn.Module]) -> None:
        """Adopt the accelerate-wrapped modules for the forward pass."""
        self.components.update(prepared)

    @property
    def unet(self) -> nn.Module:
        return self.components["unet"]

    def unet_device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @abstractmethod
    def text_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The UNet's conditioning for a batch of token ids (on the host; moved by the method)."""
