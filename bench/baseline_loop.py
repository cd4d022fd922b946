"""The baseline: diffusers' train_dreambooth.py loop, reduced to the benchmark's settings.

Same model, photos, prompt, resolution, optimizer, precision and clipping as our trainer;
what it does not have is ours: it runs the VAE on every batch (the example's default) instead
of encoding each photo once, and it runs the text encoder on every batch.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image


def load_pixels(photos: Path, resolution: int) -> torch.Tensor:
    tensors = []
    with zipfile.ZipFile(photos) as archive:
        for name in sorted(archive.namelist()):
            with archive.open(name) as stream:
                image = Image.open(stream).convert("RGB")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
            array = np.asarray(image, dtype=np.float32) / 127.5 - 1
            tensors.append(torch.from_numpy(array).permute(2, 0, 1))
    return torch.stack(tensors)


def train_baseline(base: Path, photos: Path, prompt: str, args) -> tuple[list[float], float]:
    from accelerate import Accelerator
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from trainer.accelerator import make_accelerator  # same precision resolution as ours
    from trainer.config import MixedPrecision

    accelerator: Accelerator = make_accelerator(MixedPrecision(args.precision), 1)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32
    )
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    vae.requires_grad_(False)
    vae.to(accelerator.device, dtype=dtype)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        text_encoder.gradient_checkpointing_enable()
    parameters = list(unet.parameters()) + list(text_encoder.parameters())
    if args.use_8bit_adam:
        import bitsandbytes as bnb

        optimizer = bnb.optim.AdamW8bit(parameters, lr=5e-6)
    else:
        optimizer = torch.optim.AdamW(parameters, lr=5e-6)
    unet, text_encoder, optimizer = accelerator.prepare(unet, text_encoder, optimizer)
    pixels = load_pixels(photos, args.resolution)
    ids = tokenizer(
        prompt, truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids.to(accelerator.device)
    generator = torch.Generator().manual_seed(0)
    stamps, loss = [], torch.tensor(0.0)
    for step in range(args.steps):
        batch = pixels[step % len(pixels)][None].to(accelerator.device, dtype=dtype)
        with accelerator.accumulate(unet, text_encoder):
            latents = vae.encode(batch).latent_dist.sample().float() * vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=generator).to(latents.device)
            timesteps = torch.randint(0, 1000, (1,), generator=generator).to(latents.device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            hidden = text_encoder(ids)[0]
            prediction = unet(noisy, timesteps, hidden).sample
            loss = F.mse_loss(prediction.float(), noise.float())
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    return stamps, loss.item()
