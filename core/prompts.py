"""Weighted prompts with compel, the same way in every mode.

`a (red)++ cat`, `a cat, (blurry)0.5`, `("a cat", "a dog").blend(0.7, 0.3)`: compel turns the
syntax into prompt embeddings that every pipeline accepts, including inpainting (which
dream-templates left unweighted). Prompts longer than 77 tokens are encoded in chunks instead of
being cut off.
"""

from __future__ import annotations

import torch


class PromptEncoder:
    def __init__(self, tokenizer, text_encoder):
        from compel import Compel

        self.compel = Compel(
            tokenizer=tokenizer, text_encoder=text_encoder, truncate_long_prompts=False
        )

    @torch.no_grad()
    def __call__(
        self, prompt: str, negative_prompt: str | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positive = self.compel(prompt)
        negative = self.compel(negative_prompt or "")
        positive, negative = self.compel.pad_conditioning_tensors_to_same_length(
            [positive, negative]
        )
        return positive, negative
