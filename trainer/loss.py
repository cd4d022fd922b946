"""The denoising objective: noise, target, min-SNR weighting, prior preservation."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the usual name)


def sample_noise(latents: torch.Tensor, generator: torch.Generator, offset: float) -> torch.Tensor:
    """Gaussian noise, plus a per-channel constant when `offset` > 0 ("offset noise").

    The offset lets the model learn to shift mean brightness (very dark or light images).
    """
    noise = torch.randn(latents.shape, generator=generator)
    if offset > 0:
        noise = noise + offset * torch.randn((*latents.shape[:2], 1, 1), generator=generator)
    return noise.to(device=latents.device, dtype=latents.dtype)


def sample_timesteps(scheduler, n: int, generator: torch.Generator, device) -> torch.Tensor:
    steps = scheduler.config.num_train_timesteps
    return torch.randint(0, steps, (n,), generator=generator).to(device)


def target_for(scheduler, latents, noise, timesteps) -> torch.Tensor:
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction_type {kind!r} in the base model's scheduler")


def snr(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    alphas = scheduler.alphas_cumprod.to(device=timesteps.device, dtype=torch.float32)[timesteps]
    return alphas / (1 - alphas)


def loss_weights(scheduler, timesteps: torch.Tensor, snr_gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023); all ones when `snr_gamma` is 0."""
    if snr_gamma <= 0:
        return torch.ones_like(timesteps, dtype=torch.float32)
    ratio = snr(scheduler, timesteps)
    clipped = torch.clamp(ratio, max=snr_gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (ratio + 1)
    return clipped / ratio


def denoising_loss(prediction, target, weights, n_instance: int, prior_weight: float, masks=None):
    """(total, instance part, prior part). Rows after `n_instance` are class photos.

    `masks` ([batch, 1, h, w], 0..1) weight each latent pixel's error, as cog-sdxl's masked
    loss does: the subject counts, the background barely.
    """
    per_example = F.mse_loss(prediction.float(), target.float(), reduction="none")
    if masks is not None:
        per_example = per_example * masks.to(per_example.dtype)
    per_example = per_example.mean(dim=(1, 2, 3)) * weights
    instance = per_example[:n_instance].mean()
    if len(per_example) == n_instance:
        return instance, instance, None
    prior = per_example[n_instance:].mean()
    return instance + prior_weight * prior, instance, prior
