import json

import torch
from diffusers import StableDiffusionPipeline

from buildkit.clip_vocab import clip_tokenizer


def test_tokenizer_gives_production_clip_ids():
    ids = clip_tokenizer()("a photo of sks dog").input_ids
    assert ids == [49406, 320, 1125, 539, 48136, 1929, 49407]


def test_tiny_sd15_has_the_real_layout_in_safetensors_only(tiny_sd15):
    index = json.loads((tiny_sd15 / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    files = {p.relative_to(tiny_sd15).as_posix() for p in tiny_sd15.rglob("*") if p.is_file()}
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".ckpt", ".pt", ".pth"))]


def test_tiny_sd15_generates_with_the_real_vae_factor(tiny_sd15):
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15, safety_checker=None)
    assert pipe.vae_scale_factor == 8
    out = pipe(
        "a photo of sks dog",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    assert out.shape == (1, 64, 64, 3)


def test_tiny_vae_latents_have_unit_variance(tiny_sd15):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_sd15 / "vae")
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
    assert 0.7 < latents.std().item() < 1.3
