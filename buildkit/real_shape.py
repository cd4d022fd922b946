"""Stable Diffusion 1.5 at its real shapes with random weights, for benchmarks without a hub.

The architecture numbers are SD1.5's published configs (UNet 860 M parameters, the KL-f8 VAE,
CLIP ViT-L/14's text tower); the weights are random, so speed and memory are real and images
are noise. The tokenizer is the real CLIP one (buildkit/clip_vocab.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from buildkit.clip_vocab import clip_tokenizer
from buildkit.tiny import SCHEDULER_CONFIG


def sd15_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768,
        attention_head_dim=8,
    )


def sd15_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )


def sd15_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )


def write_sd15(directory: Path, seed: int = 0) -> Path:
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    torch.manual_seed(seed)
    pipeline = StableDiffusionPipeline(
        unet=sd15_unet(),
        vae=sd15_vae(),
        text_encoder=sd15_text_encoder(),
        tokenizer=clip_tokenizer(),
        scheduler=PNDMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory, safe_serialization=True)
    return Path(directory)
