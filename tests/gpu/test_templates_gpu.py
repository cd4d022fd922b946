"""Templates on a GPU: every mode and every ControlNet type at real SD1.5 shapes, compiled too.

Skipped without CUDA. Real-shape random weights (buildkit/real_shape.py, and a real-shape
ControlNet and safety checker from buildkit/tiny_templates.py): speed, memory and dtypes are
real, images are noise. Run with `pytest -m gpu tests/gpu` (or `make gpu-test`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from buildkit.cog_client import succeeded
from core.controls import ControlType
from tests.templates.helpers import decode_image, image_uri, photo_uri, serve

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
SIZE = dict(width=512, height=512, num_inference_steps=4)
EAGER = {"INFERENCE_OPTIMIZATIONS": "tf32,channels_last,batch"}


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    from buildkit.real_shape import write_sd15

    return write_sd15(tmp_path_factory.mktemp("sd15") / "weights")


@pytest.fixture(scope="module")
def real_template_weights(tmp_path_factory):
    from buildkit.tiny_templates import write_template_weights

    built = {}

    def get(name: str):
        if name not in built:
            folder = tmp_path_factory.mktemp(name) / "template-weights"
            # the tiny refiner does not fit a real-shape base: SDXL runs without one here
            built[name] = write_template_weights(name, folder, shape="sd15", refiner=False)
        return built[name]

    return get


def mask_uri() -> str:
    mask = Image.new("L", (512, 512))
    mask.paste(255, (128, 128, 384, 384))
    return image_uri(mask)


def modes(control: bool) -> dict[str, dict]:
    source = photo_uri("coffee", (512, 512))
    cases = {
        "txt2img": {},
        "img2img": {"image": source},
        "inpaint": {"image": source, "mask": mask_uri()},
    }
    if control:
        control_image = {"control_image": photo_uri(size=(512, 512))}
        cases = {f"controlnet_{k}": {**v, **control_image} for k, v in cases.items()}
    return cases


def check_images(body: dict, count: int) -> list[np.ndarray]:
    images = [np.asarray(decode_image(uri)) for uri in body["output"]]
    assert len(images) == count
    for image in images:
        assert image.shape == (512, 512, 3) and image.std() > 0  # not a black (NaN) image
    return images


@pytest.mark.parametrize("name", ["vanilla"] + [f"controlnet-{c.value}" for c in ControlType])
def test_every_template_runs_every_mode_on_the_gpu(name, sd15, real_template_weights, tmp_path):
    template = real_template_weights(name)
    with serve(name, sd15, template, tmp_path, **EAGER) as server:
        for mode, inputs in modes(name != "vanilla").items():
            body = succeeded(*server.predict(**SIZE, **inputs, seed=1, num_outputs=2))
            check_images(body, 2)
            assert "Using seed: 1" in body["logs"], mode


def test_batched_images_keep_their_seeds(sd15, real_template_weights, tmp_path):
    with serve("vanilla", sd15, real_template_weights("vanilla"), tmp_path, **EAGER) as server:
        four = check_images(succeeded(*server.predict(**SIZE, seed=10, num_outputs=4)), 4)
        (third,) = check_images(succeeded(*server.predict(**SIZE, seed=12)), 1)
    difference = np.abs(four[2].astype(int) - third.astype(int))
    assert difference.mean() < 2  # the same noise; batched fp16 sums differ slightly
    assert np.abs(four[0].astype(int) - four[1].astype(int)).mean() > 5


@pytest.fixture(scope="module")
def compile_caches(sd15, real_template_weights):
    """Each compiled template's cache, made once at build time as build-template does."""
    from buildkit.compile_cache import write_cache
    from core.fast_path import COMPILE_CACHE

    for name in ("vanilla", "controlnet-canny"):
        template = real_template_weights(name)
        write_cache(name, sd15, template, template / COMPILE_CACHE)
    return real_template_weights


@pytest.mark.parametrize("name", ["vanilla", "controlnet-canny"])
def test_the_compiled_default_boots_from_its_cache_and_matches_eager(
    name, sd15, compile_caches, tmp_path
):
    template = compile_caches(name)
    control = name != "vanilla"
    inputs = {**SIZE, **modes(control)["controlnet_txt2img" if control else "txt2img"]}
    with serve(name, sd15, template, tmp_path, TORCHINDUCTOR_CACHE_DIR=str(tmp_path)) as server:
        (compiled,) = check_images(succeeded(*server.predict(**inputs, seed=3)), 1)
        logs = server.logs()
    assert "compile cache loaded" in logs and "warmed up (compiled)" in logs
    with serve(name, sd15, template, tmp_path / "eager", **EAGER) as server:
        (eager,) = check_images(succeeded(*server.predict(**inputs, seed=3)), 1)
    assert np.abs(compiled.astype(int) - eager.astype(int)).mean() < 3


def test_the_engine_runs_in_fp16_with_every_module_on_the_gpu(sd15, real_template_weights):
    from core.pipelines import Engine
    from core.weights import find

    engine = Engine.load(
        find(sd15),
        template_dir=real_template_weights("controlnet-depth"),
        control=ControlType.DEPTH,
    )
    for pipeline in engine.pipelines.values():
        for module in (pipeline.unet, pipeline.vae, pipeline.text_encoder):
            assert module.dtype == torch.float16 and module.device.type == "cuda"
    assert engine.controlnet.dtype == torch.float16
    assert engine.checker.model.dtype == torch.float16


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from buildkit.real_shape import write_sdxl

    return write_sdxl(tmp_path_factory.mktemp("sdxl") / "weights")


def test_the_sdxl_template_runs_every_mode_in_fp16_without_nan(
    sdxl, real_template_weights, tmp_path
):
    """SDXL's VAE overflows in fp16 (diffusers#4325): without vae-fp16-fix/ it is upcast."""
    with serve("sdxl", sdxl, real_template_weights("sdxl"), tmp_path, **EAGER) as server:
        for mode, inputs in modes(False).items():
            body = succeeded(
                *server.predict(**SIZE, **inputs, seed=1, num_outputs=2, scheduler="K_EULER")
            )
            check_images(body, 2)
            assert "Using seed: 1" in body["logs"], mode
