"""Run the real trainer on tiny weights and read back what it produced."""

from __future__ import annotations

import os
import random
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load

from trainer.config import TrainConfig

FAST = dict(
    instance_prompt="a photo of sks cat",
    class_prompt="a photo of a cat",
    resolution=64,
    max_train_steps=3,
    learning_rate=1e-4,
    num_class_images=1,
    sample_batch_size=1,
    checkpointing_steps=0,
    seed=0,
)


REPO = Path(__file__).resolve().parents[2]


def cli(work: Path, base: Path, photos: Path, steps: int, *flags: str) -> tuple[list, dict]:
    """(command, environment) running `python -m trainer.cli` with FAST's settings."""
    env = {
        **os.environ,
        "TRAINER_WORK_DIR": str(work),
        "BASE_MODEL_DIR": str(base),
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable,
        "-m",
        "trainer.cli",
        "--instance_data",
        str(photos),
        "--instance_prompt",
        FAST["instance_prompt"],
        "--class_prompt",
        FAST["class_prompt"],
        "--resolution",
        "64",
        "--max_train_steps",
        str(steps),
        "--learning_rate",
        "1e-4",
        "--seed",
        "0",
        *flags,
    ]
    return command, env


def train(monkeypatch, base: Path, photos: Path, work: Path, callbacks=(), **overrides):
    """One in-process training run; returns trainer.job.Result."""
    from trainer import job

    monkeypatch.setenv("BASE_MODEL_DIR", str(base))
    monkeypatch.setenv("TRAINER_WORK_DIR", str(work))
    return job.train(TrainConfig(**{**FAST, "instance_data": photos, **overrides}), callbacks)


def weights(output: Path, part: str = "unet") -> dict[str, torch.Tensor]:
    name = {
        "unet": "unet/diffusion_pytorch_model.safetensors",
        "text_encoder": "text_encoder/model.safetensors",
    }[part]
    with zipfile.ZipFile(output) as archive:
        return load(archive.read(name))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@torch.no_grad()
def instance_loss(folder: Path, photos: list, prompt: str, base: Path) -> float:
    """Denoising loss of the pipeline in `folder` on the photos, with fixed noise and steps."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    return denoising_loss(unet, text_encoder, tokenizer, photos, prompt, base)


@torch.no_grad()
def adapter_loss(folder: Path | None, photos: list, prompt: str, base: Path) -> float:
    """The same loss for the base with an adapter output loaded on top (None: the base)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None)
    if folder is not None and (folder / "pytorch_lora_weights.safetensors").is_file():
        pipe.load_lora_weights(folder, weight_name="pytorch_lora_weights.safetensors")
    if folder is not None and (folder / "embeddings.safetensors").is_file():
        pipe.load_textual_inversion(folder / "embeddings.safetensors", token="sks")
        prompt = pipe.maybe_convert_prompt(prompt, pipe.tokenizer)
    return denoising_loss(pipe.unet, pipe.text_encoder, pipe.tokenizer, photos, prompt, base)


def denoising_loss(unet, text_encoder, tokenizer, photos, prompt, base) -> float:
    from diffusers import AutoencoderKL, DDPMScheduler

    from trainer.data import square_crop, to_tensor

    vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    pixels = torch.stack([to_tensor(square_crop(p, 64, True, random.Random(0))) for p in photos])
    latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    hidden = text_encoder(tokenizer([prompt] * len(photos), return_tensors="pt").input_ids)[0]
    generator, losses = torch.Generator().manual_seed(123), []
    for _ in range(20):
        noise = torch.randn(latents.shape, generator=generator)
        steps = torch.randint(0, 1000, (len(photos),), generator=generator)
        prediction = unet(scheduler.add_noise(latents, noise, steps), steps, hidden).sample
        losses.append(torch.nn.functional.mse_loss(prediction, noise).item())
    return sum(losses) / len(losses)
