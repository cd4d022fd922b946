"""The engine in-process: what is cheaper to show without a server."""

import numpy as np
from PIL import Image

from buildkit.sample_photos import photo
from buildkit.tiny import write_sd15
from core.controls import ControlType
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


def test_modes_share_the_loaded_modules(tiny_sd15, template_weights):
    engine = Engine.load(
        find(tiny_sd15),
        template_dir=template_weights("controlnet-canny"),
        control=ControlType.CANNY,
    )
    pipelines = [engine.pipeline(mode, "DDIM") for mode in Mode]
    assert all(p.unet is engine.base.unet and p.vae is engine.base.vae for p in pipelines)
    assert len({id(p.scheduler) for p in pipelines}) == len(pipelines)  # fresh per request
