"""The engine in-process: what is cheaper to show without a server."""

import numpy as np
import pytest
import torch
from PIL import Image

from buildkit.sample_photos import photo
from buildkit.tiny import write_sd15
from core.controls import ControlType
from core.errors import UserError
from core.pipelines import Engine
from core.requests import GenerationRequest, Mode
from core.weights import find

SMALL = dict(width=64, height=64, num_inference_steps=3, disable_safety_check=True)


def inpaint_request() -> GenerationRequest:
    mask = Image.new("L", (64, 64))
    mask.paste(255, (16, 16, 48, 48))
    return GenerationRequest(
        prompt="a cat",
        image=photo("coffee").resize((64, 64)),
        mask=mask,
        prompt_strength=1.0,
        seed=3,
        **SMALL,
    )


def test_inpainting_works_with_a_9_channel_inpainting_unet(tmp_path, template_weights):
    weights = find(write_sd15(tmp_path / "inpaint", inpainting=True))
    engine = Engine.load(weights, template_dir=template_weights("vanilla"))
    assert engine.base.unet.config.in_channels == 9
    (image,) = engine.generate(inpaint_request())
    assert image.size == (64, 64)


def test_inpainting_with_a_4_channel_unet_keeps_the_unmasked_area(tiny_sd15, template_weights):
    engine = Engine.load(find(tiny_sd15), template_dir=template_weights("vanilla"))
    request = inpaint_request()
    (image,) = engine.generate(request)
    result, source = np.asarray(image, dtype=float), np.asarray(request.image, dtype=float)
    outside = np.abs(result[:8] - source[:8]).mean()
    inside = np.abs(result[24:40, 24:40] - source[24:40, 24:40]).mean()
    assert inside > outside  # the repainted square changed more than the kept border


def test_modes_share_the_loaded_modules_and_get_a_fresh_scheduler(tiny_sd15, template_weights):
    engine = canny_engine(tiny_sd15, template_weights)
    pipelines = [engine.pipeline(mode, "DDIM") for mode in Mode]
    assert all(p.unet is engine.base.unet and p.vae is engine.base.vae for p in pipelines)
    schedulers = {id(p.scheduler) for p in pipelines}
    again = engine.pipeline(Mode.TXT2IMG, "KarrasDPM")
    assert len(schedulers) == len(pipelines) and id(again.scheduler) not in schedulers
    assert again.scheduler.config.use_karras_sigmas
    assert not engine.pipeline(
        Mode.TXT2IMG, "DPMSolverMultistep"
    ).scheduler.config.use_karras_sigmas


def canny_engine(tiny_sd15, template_weights) -> Engine:
    return Engine.load(
        find(tiny_sd15),
        template_dir=template_weights("controlnet-canny"),
        control=ControlType.CANNY,
    )


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_runs_every_mode_in_one_dtype(
    dtype, tiny_sd15, template_weights, monkeypatch
):
    """The GPU's half-precision path, on a CPU: shared modules stay in one dtype in every mode."""
    monkeypatch.setenv("INFERENCE_DTYPE", dtype)
    engine = canny_engine(tiny_sd15, template_weights)
    expected = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    request = inpaint_request()
    modes = [
        {},
        {"image": request.image},
        {"image": request.image, "mask": request.mask},
        {"control_image": request.image, "image": request.image, "mask": request.mask},
    ]
    for extra in modes:
        (image,) = engine.generate(GenerationRequest(prompt="a cat", seed=1, **SMALL, **extra))
        assert image.size == (64, 64)
    for pipeline in engine.pipelines.values():
        assert {p.dtype for p in pipeline.unet.parameters()} == {expected}
        assert pipeline.vae.dtype == pipeline.text_encoder.dtype == expected
    assert engine.controlnet.dtype == expected


def test_batched_outputs_keep_seed_plus_i_per_image(tiny_sd15, template_weights, monkeypatch):
    request = GenerationRequest(prompt="a cat", seed=20, num_outputs=3, **SMALL)
    alone = Engine.load(find(tiny_sd15), template_dir=template_weights("vanilla"))
    streamed = [np.asarray(i, dtype=int) for i in alone.generate(request)]
    monkeypatch.setenv("INFERENCE_OPTIMIZATIONS", "batch")
    engine = Engine.load(find(tiny_sd15), template_dir=template_weights("vanilla"))
    assert engine.fast.batches and engine.base.vae.use_slicing
    batched = [np.asarray(i, dtype=int) for i in engine.generate(request)]
    assert len(batched) == 3
    for one, other in zip(batched, streamed, strict=True):
        assert np.abs(one - other).max() <= 2  # the same noise; batched float sums may differ
    assert np.abs(batched[0] - batched[1]).mean() > 5


def test_an_image_that_comes_out_nan_is_an_error_not_a_black_image(tiny_sd15, template_weights):
    engine = Engine.load(find(tiny_sd15), template_dir=template_weights("vanilla"))
    with torch.no_grad():
        engine.base.vae.decoder.conv_out.bias.fill_(float("nan"))  # an overflow at run time
    with pytest.raises(UserError, match=r"the image for seed 4 came out as NaN"):
        list(engine.generate(GenerationRequest(prompt="a cat", seed=4, **SMALL)))


def test_a_non_finite_controlnet_is_refused_at_load(tiny_sd15, template_weights, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(template_weights("controlnet-canny"), tmp_path / "template-weights")
    path = folder / "controlnet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    tensors["conv_in.bias"] = torch.full_like(tensors["conv_in.bias"], float("inf"))
    save_file(tensors, path)
    with pytest.raises(UserError, match=r"template-weights/ cannot be used: controlnet/: .*NaN"):
        Engine.load(find(tiny_sd15), template_dir=folder, control=ControlType.CANNY)
