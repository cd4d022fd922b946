"""Stable Diffusion 1.5: one CLIP text encoder, its last hidden state, no extra conditioning."""

from __future__ import annotations

from trainer.families.base import Conditioning, FamilySide


class SD15Side(FamilySide):
    def encode(self, encoders, ids) -> Conditioning:
        (encoder,), (tokens,) = encoders, ids
        return Conditioning(encoder(tokens)[0])

    def predict(self, unet, noisy, timesteps, conditioning, time_ids):
        return unet(noisy, timesteps, conditioning.hidden).sample
