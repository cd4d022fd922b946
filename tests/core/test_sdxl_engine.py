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


def test_sdxl_controlnet_canny_steers_the_image_in_every_mode_from_the_same_engine(
    tiny_sdxl, template_weights, monkeypatch
):
    from buildkit.sample_photos import photo
    from core.controls import ControlType

    monkeypatch.setenv("INFERENCE_DTYPE", "fp32")
    canny = Engine.load(
        find(tiny_sdxl, (Family.SDXL,)),
        template_dir=template_weights("sdxl-controlnet-canny"),
        control=ControlType.CANNY,
        template="sdxl-controlnet-canny",
    )
    edges = photo("astronaut").resize((64, 64))
    plain = image(canny)
    steered = image(canny, control_image=edges)
    unscaled = image(canny, control_image=edges, controlnet_conditioning_scale=0.0)
    assert not np.array_equal(plain, steered)
    assert np.abs(unscaled.astype(int) - plain).max() <= 2
    start = photo("coffee").resize((64, 64))
    refined = image(canny, control_image=edges, image=start, refine="base_image_refiner")
    assert refined.shape == (64, 64, 3)
    with pytest.raises(UserError, match="does not work in controlnet_img2img mode"):
        image(canny, control_image=edges, image=start, refine="expert_ensemble_refiner")


def test_a_full_fine_tune_output_loads_its_unet_over_the_base(
    tiny_sdxl, photo_zip, tmp_path, monkeypatch
):
    import tarfile

    from safetensors.torch import load_file

    from core.adapters import find_weights
    from trainer import sdxl_job
    from trainer.sdxl_config import SDXLConfig

    monkeypatch.setenv("BASE_MODEL_DIR", str(tiny_sdxl))
    monkeypatch.setenv("TRAINER_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("PREPROCESS_WEIGHTS_DIR", str(tmp_path / "none"))
    cfg = SDXLConfig(
        input_images=photo_zip,
        is_lora=False,
        resolution=64,
        max_train_steps=2,
        train_batch_size=2,
        lr_warmup_steps=0,
    )
    with tarfile.open(sdxl_job.train(cfg).output) as archive:
        archive.extractall(tmp_path / "weights", filter="data")
    monkeypatch.setenv("WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("BASE_WEIGHTS_DIR", str(tiny_sdxl))
    base, adapter = find_weights((Family.SDXL,))
    assert adapter.adapter.unet == "unet.safetensors" and adapter.adapter.lora is None
    monkeypatch.setenv("INFERENCE_DTYPE", "fp32")
    tuned = Engine.load(base, template_dir=tmp_path / "none", adapter=adapter)
    trained = load_file(tmp_path / "weights" / "unet.safetensors")
    loaded = tuned.base.unet.state_dict()
    assert all(torch.equal(loaded[k], v.to(loaded[k].dtype)) for k, v in trained.items())
    plain = Engine.load(base, template_dir=tmp_path / "none")
    assert not np.array_equal(image(tuned), image(plain))


def test_an_sdxl_output_whose_unet_or_embeddings_do_not_fit_is_refused_by_name(
    tiny_sdxl, photo_zip, tmp_path, monkeypatch
):
    import tarfile

    from safetensors.torch import load_file, save_file

    from core.adapters import find_weights
    from trainer import sdxl_job
    from trainer.sdxl_config import SDXLConfig

    monkeypatch.setenv("BASE_MODEL_DIR", str(tiny_sdxl))
    monkeypatch.setenv("TRAINER_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("PREPROCESS_WEIGHTS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("INFERENCE_DTYPE", "fp32")
    cfg = SDXLConfig(
        input_images=photo_zip, is_lora=False, resolution=64, max_train_steps=1, lr_warmup_steps=0
    )
    weights = tmp_path / "weights"
    with tarfile.open(sdxl_job.train(cfg).output) as archive:
        archive.extractall(weights, filter="data")
    monkeypatch.setenv("WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("BASE_WEIGHTS_DIR", str(tiny_sdxl))
    unet = load_file(weights / "unet.safetensors")
    save_file({**unet, "extra.weight": torch.zeros(1)}, weights / "unet.safetensors")
    base, adapter = find_weights((Family.SDXL,))
    with pytest.raises(BrokenWeightsError, match=r"unet\.safetensors: has tensors the base"):
        Engine.load(base, template_dir=tmp_path, adapter=adapter)
    save_file(unet, weights / "unet.safetensors")
    rows = load_file(weights / "embeddings.safetensors")
    save_file({"clip_l": rows["clip_l"]}, weights / "embeddings.safetensors")
    base, adapter = find_weights((Family.SDXL,))
    with pytest.raises(BrokenWeightsError, match=r"embeddings\.safetensors: has no clip_g"):
        Engine.load(base, template_dir=tmp_path, adapter=adapter)


def test_without_invisible_watermark_only_watermarked_requests_fail_saying_why(monkeypatch):
    import diffusers.utils

    from core import watermark

    monkeypatch.setattr(diffusers.utils, "is_invisible_watermark_available", lambda: False)
    missing = watermark.load()
    assert missing is None
    assert watermark.choose(missing, apply=False) is None
    with pytest.raises(UserError, match="apply_watermark needs the invisible-watermark package"):
        watermark.choose(missing, apply=True)
    present = watermark.choose(object(), apply=True)
    assert present is not None
