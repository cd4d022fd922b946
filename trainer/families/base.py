"""What a family's trainer side does: token ids per tokenizer, text states, the UNet's call.

A caption is tokenized once per tokenizer of the family (`spec.tokenizers`); a batch carries one
id tensor per tokenizer. Encoding returns the hidden states that cross-attention reads and, for
families that use it, the pooled embedding; `predict` calls the UNet with whatever else the
family's UNet takes (SDXL: `add_time_ids` from each photo's original size and crop).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from core.families import FamilySpec


@dataclass
class Conditioning:
    hidden: torch.Tensor  # [batch, tokens, dim]
    pooled: torch.Tensor | None = None  # [batch, dim] where the family uses it

    def row(self, index: int) -> Conditioning:
        pooled = None if self.pooled is None else self.pooled[index]
        return Conditioning(self.hidden[index], pooled)

    @staticmethod
    def stack(rows: list[Conditioning]) -> Conditioning:
        pooled = None if rows[0].pooled is None else torch.stack([r.pooled for r in rows])
        return Conditioning(torch.stack([r.hidden for r in rows]), pooled)


class FamilySide(ABC):
    def __init__(self, spec: FamilySpec):
        self.spec = spec

    @property
    def text_encoders(self) -> tuple[str, ...]:
        return self.spec.text_encoders

    @property
    def tokenizers(self) -> tuple[str, ...]:
        return self.spec.tokenizers

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """(tokenizer, text encoder) component names, in order."""
        return tuple(zip(self.spec.tokenizers, self.spec.text_encoders, strict=True))

    def pad_ids(self, components: dict) -> tuple[int, ...]:
        return tuple(components[name].pad_token_id for name in self.tokenizers)

    def tokenize(self, components: dict, captions: list[str], pad_tokens: bool) -> list[tuple]:
        """Per caption, its ids from each tokenizer: (ids_1, ids_2, ...)."""
        padding = "max_length" if pad_tokens or self.always_pad else "do_not_pad"
        per_tokenizer = []
        for name in self.tokenizers:
            tokenizer = components[name]
            ids = tokenizer(
                captions,
                padding=padding,
                truncation=True,
                max_length=tokenizer.model_max_length,
            ).input_ids
            per_tokenizer.append([torch.tensor(row) for row in ids])
        return [tuple(rows) for rows in zip(*per_tokenizer, strict=True)]

    always_pad = False  # pad every caption to the tokenizer's length (as the family's pipelines)

    @abstractmethod
    def encode(self, encoders: list[nn.Module], ids: tuple[torch.Tensor, ...]) -> Conditioning:
        """Text states of a batch of ids (one tensor per tokenizer, on the encoders' device)."""

    @abstractmethod
    def predict(
        self,
        unet: nn.Module,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: Conditioning,
        time_ids: torch.Tensor | None,
    ) -> torch.Tensor: ...

    def time_ids(self, original: tuple[int, int], crop: tuple[int, int], size: int) -> list[int]:
        """The UNet's extra size conditioning of one photo (empty where the family has none)."""
        return []
