"""The engine on tiny SDXL, in this process: each dtype branch, the fp16 VAE, the refiner's
absence, and which template serves which family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import UserError
from core.manifest import Family
from core.pipelines import FP16_VAE, Engine
from core.requests import GenerationRequest
from core.weights import BrokenWeightsError, find

REQUEST = dict(prompt="a photo of a cat", width=64, height=64, num_inference_steps=3, seed=1)


def engine(tiny_sdxl, template_dir, monkeypatch, dtype: str) -> Engine:
    monkeypatch.setenv("INFERENCE_DTYPE", dtype)
    return Engine.load(find(tiny_sdxl, (Family.SDXL,)), template_dir=template_dir)


def image(engine: Engine, **inputs) -> np.ndarray:
    request = GenerationRequest(**{**REQUEST, "disable_safety_check": True, **inputs})
    return np.asarray(next(engine.generate(request)))


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_generates_finite_images_with_the_refiner(
    tiny_sdxl, template_weights, monkeypatch, dtype
):
    half = engine(tiny_sdxl, template_weights("sdxl"), monkeypatch, dtype)
    assert half.base.unet.dtype == half.refiner.pipeline.unet.dtype == half.dtype
    for refine in ("no_refiner", "expert_ensemble_refiner"):
        made = image(half, refine=refine, num_inference_steps=6)
        assert made.shape == (64, 64, 3) and made.std() > 0


def test_fp16_decodes_with_the_fp16_fix_vae_when_the_template_has_one(
    tiny_sdxl, tmp_path, monkeypatch
):
    from buildkit.tiny import tiny_vae

    fixed = tiny_vae(seed=9)
    fixed.save_pretrained(tmp_path / FP16_VAE, safe_serialization=True)
    with_fix = engine(tiny_sdxl, tmp_path, monkeypatch, "fp16")
    expected = fixed.state_dict()["decoder.conv_out.weight"].half()
    assert torch.equal(with_fix.base.vae.state_dict()["decoder.conv_out.weight"], expected)
    without = engine(tiny_sdxl, tmp_path / "none", monkeypatch, "fp16")
    assert without.base.vae.config.force_upcast  # diffusers decodes it in float32
    assert not torch.equal(without.base.vae.state_dict()["decoder.conv_out.weight"], expected)


def test_refine_without_a_refiner_says_what_to_download(tiny_sdxl, tmp_path, monkeypatch):
    bare = engine(tiny_sdxl, tmp_path, monkeypatch, "fp32")
    assert bare.refiner is None
    with pytest.raises(UserError, match=r"needs the refiner.*download-weights template sdxl"):
        image(bare, refine="base_image_refiner")


def test_each_template_family_refuses_the_other_by_name(tiny_sdxl, tiny_sd15):
    with pytest.raises(BrokenWeightsError, match=r"SDXL weights and this template serves SD1\.5"):
        find(tiny_sdxl)
    with pytest.raises(BrokenWeightsError, match=r"SD1\.5 weights and this template serves SDXL"):
        find(tiny_sd15, (Family.SDXL,))
