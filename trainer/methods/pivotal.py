"""Pivotal tuning (as cog-sdxl): new tokens and LoRA train together in one optimizer, with
their own learning rates; at `ti_fraction` of the steps the tokens freeze and LoRA goes on.

One optimizer and one schedule throughout: after the pivot the schedule still drives the
LoRA group that remains (cog-sdxl rebuilt its optimizer and left the schedule on the old one).
"""

from __future__ import annotations

import math

from core.manifest import Method
from trainer.methods.base import TrainingMethod
from trainer.methods.lora import LoraLayers
from trainer.methods.textual_inversion import new_tokens


class PivotalTuning(TrainingMethod):
    def __init__(self, cfg, components: dict):
        self.tokens = new_tokens(cfg)
        self.ti_fraction = cfg.ti_fraction
        lora = LoraLayers(
            cfg.lora_rank, cfg.lora_alpha, cfg.train_text_encoder, cfg.lora_lr, cfg.seed
        )
        super().__init__("pivotal", Method.PIVOTAL, components, [self.tokens, lora])

    def plan(self, total_steps: int) -> None:
        self.tokens.freeze_at = math.ceil(self.ti_fraction * total_steps)


def pivotal(cfg, components: dict) -> TrainingMethod:
    return PivotalTuning(cfg, components)
