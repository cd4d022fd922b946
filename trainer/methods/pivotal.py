"""Pivotal tuning (as cog-sdxl): new tokens and a second part (LoRA, or with SDXL's
`is_lora=false` the whole UNet) train together in one optimizer, with their own learning rates;
at `ti_fraction` of the steps the tokens freeze and the other part goes on.

One optimizer and one schedule throughout: after the pivot the schedule still drives the
group that remains (cog-sdxl rebuilt its optimizer and left the schedule on the old one).
"""

from __future__ import annotations

import math

from core.manifest import Method
from trainer.methods.base import Trainable, TrainingMethod
from trainer.methods.lora import LoraLayers
from trainer.methods.textual_inversion import new_tokens


class PivotalTuning(TrainingMethod):
    def __init__(self, cfg, components: dict, side, other: Trainable, method=Method.PIVOTAL):
        self.tokens = new_tokens(cfg, side)
        self.ti_fraction = cfg.ti_fraction
        super().__init__("pivotal", method, components, [self.tokens, other], side)

    def plan(self, total_steps: int) -> None:
        self.tokens.freeze_at = math.ceil(self.ti_fraction * total_steps)


def pivotal(cfg, components: dict, side) -> TrainingMethod:
    lora = LoraLayers(
        cfg.lora_rank,
        cfg.lora_alpha,
        cfg.train_text_encoder,
        cfg.lora_lr,
        cfg.seed,
        side.text_encoders,
    )
    return PivotalTuning(cfg, components, side, lora)
