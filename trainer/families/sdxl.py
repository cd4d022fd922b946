"""SDXL: two text encoders whose penultimate hidden states are joined, the second's pooled
(projected) embedding, and `add_time_ids` = original size + crop top-left + target size.

As diffusers' StableDiffusionXLPipeline encodes prompts (padding to 77 tokens), so the states
a LoRA or the new tokens are trained on are the ones the pipeline gives them at inference.
"""

from __future__ import annotations

import torch

from trainer.families.base import Conditioning, FamilySide


class SDXLSide(FamilySide):
    always_pad = True

    def encode(self, encoders, ids) -> Conditioning:
        states, pooled = [], None
        for encoder, tokens in zip(encoders, ids, strict=True):
            output = encoder(tokens, output_hidden_states=True)
            states.append(output.hidden_states[self.spec.hidden_layer])
            pooled = output[0]  # the last encoder's: CLIPTextModelWithProjection.text_embeds
        return Conditioning(torch.cat(states, dim=-1), pooled)

    def predict(self, unet, noisy, timesteps, conditioning, time_ids):
        added = {"text_embeds": conditioning.pooled, "time_ids": time_ids}
        return unet(noisy, timesteps, conditioning.hidden, added_cond_kwargs=added).sample

    def time_ids(self, original, crop, size) -> list[int]:
        return [*original, *crop, size, size]
