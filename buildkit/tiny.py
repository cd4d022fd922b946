"""Tiny random-weight models in the real layouts, built offline in seconds.

They are the embedded default of `make demo` and the fixtures of every test: the same classes,
folder layout and tokenizer as Stable Diffusion 1.5 (so every code path is the production one),
with about a million parameters instead of a billion. Facts that shape them
(../shared/reference/cpu-stack.md):

- the VAE downsamples by 8 like the real one, so sizes, `vae_scale_factor` and ControlNet
  conditioning line up exactly as in production;
- its `scaling_factor` is measured so latents have unit variance: with the real 0.18215 a random
  VAE's latents are mostly noise and a falling training loss would show nothing;
- a fresh ControlNet has zero-initialised output convolutions, which would make the control
  image have exactly no effect, so they are randomised.
"""

from __future__ import annotations

from pathlib import Path

import torch

from buildkit.clip_vocab import clip_tokenizer

TEXT_DIM = 32
SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "set_alpha_to_one": False,
}


def _text_config(**overrides):
    from transformers import CLIPTextConfig

    values = dict(
        vocab_size=49408,
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=TEXT_DIM,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    values.update(overrides)
    return CLIPTextConfig(**values)


def tiny_unet(seed: int = 0, in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )
    vae.register_to_config(scaling_factor=_unit_variance_scale(vae, seed))
    return vae


def _unit_variance_scale(vae, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(8, 3, 64, 64, generator=generator) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean
    return round(1.0 / latents.std().item(), 6)


def tiny_text_encoder(seed: int = 0):
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    return CLIPTextModel(_text_config())


def tiny_sd15_pipeline(seed: int = 0, inpainting: bool = False):
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPImageProcessor

    return StableDiffusionPipeline(
        unet=tiny_unet(seed, in_channels=9 if inpainting else 4),  # 9: latents, mask, masked image
        vae=tiny_vae(seed),
        text_encoder=tiny_text_encoder(seed),
        tokenizer=clip_tokenizer(),
        scheduler=PNDMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
        requires_safety_checker=False,
    )


def write_sd15(directory: Path, seed: int = 0, inpainting: bool = False) -> Path:
    """A tiny SD1.5 pipeline in `save_pretrained` layout (safetensors only)."""
    directory = Path(directory)
    tiny_sd15_pipeline(seed, inpainting).save_pretrained(directory, safe_serialization=True)
    return directory


def tiny_controlnet(seed: int = 0, family: str = "sd15"):
    """A ControlNet of the tiny UNet's shape (SD1.5's or SDXL's) whose control image really
    changes the output."""
    from diffusers import ControlNetModel

    unet = tiny_sdxl_unet(seed) if family == "sdxl" else tiny_unet(seed)
    controlnet = ControlNetModel.from_unet(unet)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, tensor in controlnet.state_dict().items():
            if "controlnet_" in name and not tensor.any():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
    return controlnet


def write_controlnet(directory: Path, seed: int = 0, family: str = "sd15") -> Path:
    directory = Path(directory)
    tiny_controlnet(seed, family).save_pretrained(directory, safe_serialization=True)
    return directory


def tiny_safety_checker(flag_everything: bool = False, seed: int = 0):
    """The real safety-checker class, tiny. It flags nothing, or (for tests) everything.

    An image is flagged when cos(image, concept) - threshold > 0. The thresholds ship as 1.0, so
    random concepts never flag; a threshold of -1.0 flags every image.
    """
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPVisionConfig

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
        projection_dim=TEXT_DIM,
    )
    config = CLIPConfig(
        text_config=_text_config().to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=TEXT_DIM,
    )
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds.copy_(torch.randn_like(checker.concept_embeds))
        checker.special_care_embeds.copy_(torch.randn_like(checker.special_care_embeds))
        threshold = -1.0 if flag_everything else 1.0
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(1.0)
    return checker


def write_safety_checker(directory: Path, flag_everything: bool = False) -> Path:
    from transformers import CLIPImageProcessor

    directory = Path(directory)
    tiny_safety_checker(flag_everything).save_pretrained(directory, safe_serialization=True)
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(directory)
    return directory


# --- SDXL ------------------------------------------------------------------------------------
# Two text encoders whose hidden states are joined (cross-attention 2 x TEXT_DIM), the second
# with a projection whose pooled output, with six add_time_ids of TIME_DIM each, conditions the
# UNet ("text_time"); the refiner has only the second encoder and five time ids (an aesthetic
# score instead of the target size). Both tokenizers are the real CLIP BPE; the second pads
# with "!" (id 0), as SDXL's open_clip tokenizer does.
TIME_DIM = 8
SDXL_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
}


def tiny_sdxl_unet(seed: int = 0, refiner: bool = False, in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    time_ids = 5 if refiner else 6
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_DIM,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=time_ids * TIME_DIM + TEXT_DIM,
        cross_attention_dim=TEXT_DIM if refiner else 2 * TEXT_DIM,
        norm_num_groups=32,
    )


def tiny_text_encoder_2(seed: int = 0):
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed + 1)
    return CLIPTextModelWithProjection(_text_config(hidden_act="gelu", pad_token_id=0))


def clip_tokenizer_2():
    """SDXL's second tokenizer: the same vocabulary, padding with "!" (id 0)."""
    tokenizer = clip_tokenizer()
    tokenizer.pad_token = "!"
    return tokenizer


def tiny_sdxl_pipeline(seed: int = 0):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(
        vae=tiny_vae(seed),
        text_encoder=tiny_text_encoder(seed),
        text_encoder_2=tiny_text_encoder_2(seed),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer_2(),
        unet=tiny_sdxl_unet(seed),
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def tiny_sdxl_refiner(seed: int = 0):
    """The refiner: the base's VAE and second text encoder (as SDXL's share them), its own UNet."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    return StableDiffusionXLImg2ImgPipeline(
        vae=tiny_vae(seed),
        text_encoder=None,
        text_encoder_2=tiny_text_encoder_2(seed),
        tokenizer=None,
        tokenizer_2=clip_tokenizer_2(),
        unet=tiny_sdxl_unet(seed + 7, refiner=True),
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER_CONFIG),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        add_watermarker=False,
    )


def write_sdxl(directory: Path, seed: int = 0) -> Path:
    """A tiny SDXL base pipeline in `save_pretrained` layout (safetensors only)."""
    directory = Path(directory)
    tiny_sdxl_pipeline(seed).save_pretrained(directory, safe_serialization=True)
    return directory


def write_sdxl_refiner(directory: Path, seed: int = 0) -> Path:
    directory = Path(directory)
    tiny_sdxl_refiner(seed).save_pretrained(directory, safe_serialization=True)
    return directory
