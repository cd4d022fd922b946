"""Stable Diffusion 1.5 and SDXL at their real shapes with random weights, for benchmarks
without a hub.

The architecture numbers are the published configs: SD1.5 (UNet 860 M parameters, the KL-f8
VAE, CLIP ViT-L/14's text tower) and SDXL base 1.0 (UNet 2.6 B parameters with text_time
conditioning, the same VAE layout, CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 with its projection).
The weights are random, so speed and memory are real and images are noise. The tokenizers are
the real CLIP one (buildkit/clip_vocab.py); SDXL's second pads with "!".
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


def _clip_text_config(**shape):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        **{"hidden_act": "quick_gelu", "pad_token_id": 49407, **shape},
    )


def sd15_text_encoder():
    from transformers import CLIPTextModel

    return CLIPTextModel(
        _clip_text_config(
            hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12
        )
    )


def sdxl_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(5, 10, 20),
        transformer_layers_per_block=(1, 2, 10),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )


def sdxl_text_encoder_2():
    from transformers import CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(
        _clip_text_config(
            hidden_size=1280,
            intermediate_size=5120,
            num_attention_heads=20,
            num_hidden_layers=32,
            projection_dim=1280,
            hidden_act="gelu",
            pad_token_id=0,
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


def write_sdxl(directory: Path, seed: int = 0) -> Path:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    from buildkit.tiny import SDXL_SCHEDULER_CONFIG, clip_tokenizer_2

    torch.manual_seed(seed)
    vae = sd15_vae()
    vae.register_to_config(scaling_factor=0.13025, force_upcast=True, sample_size=1024)
    pipeline = StableDiffusionXLPipeline(
        unet=sdxl_unet(),
        vae=vae,
        text_encoder=sd15_text_encoder(),
        text_encoder_2=sdxl_text_encoder_2(),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer_2(),
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER_CONFIG),
        add_watermarker=False,
    )
    pipeline.save_pretrained(directory, safe_serialization=True)
    return Path(directory)
