"""Every ControlNet template through Cog's real HTTP server, with its annotator's real class."""

import numpy as np
import pytest
from PIL import Image

from buildkit.cog_client import succeeded
from core.controls import ControlType
from tests.templates.helpers import SMALL, decode_image, image_uri, photo_uri, serve


@pytest.fixture(scope="module", params=[c.value for c in ControlType])
def server(request, tiny_sd15, template_weights, tmp_path_factory):
    name = f"controlnet-{request.param}"
    with serve(name, tiny_sd15, template_weights(name), tmp_path_factory.mktemp(name)) as running:
        yield running


def run(server, **inputs) -> list[np.ndarray]:
    body = succeeded(
        *server.predict(**{**SMALL, "prompt": "a photo of a cat", "seed": 5, **inputs})
    )
    return [np.asarray(decode_image(uri)) for uri in body["output"]]


def test_annotator_runs_and_the_control_changes_the_image(server):
    control, image = run(server, control_image=photo_uri(), return_processed_control=True)
    assert control.shape == image.shape == (64, 64, 3)
    (again,) = run(server, control_image=photo_uri())
    (plain,) = run(server)  # txt2img, same seed
    assert np.array_equal(image, again)
    assert not np.array_equal(image, plain)


def test_controlnet_img2img_and_inpainting_return_the_requested_size(server):
    mask = Image.new("L", (80, 80))
    mask.paste(255, (20, 20, 60, 60))
    (img2img,) = run(
        server, control_image=photo_uri(), image=photo_uri("coffee", (80, 80)), width=72
    )
    (inpaint,) = run(
        server,
        control_image=photo_uri(),
        image=photo_uri("coffee", (80, 80)),
        mask=image_uri(mask),
        width=72,
    )
    assert img2img.shape == inpaint.shape == (64, 72, 3)


def test_conditioning_scale_zero_is_plain_txt2img_and_seeds_differ(server):
    (unscaled,) = run(server, control_image=photo_uri(), controlnet_conditioning_scale=0.0)
    (plain,) = run(server)
    (other_seed,) = run(server, seed=6)
    assert plain.shape == (64, 64, 3)
    assert np.abs(unscaled.astype(int) - plain.astype(int)).max() <= 2
    assert not np.array_equal(plain, other_seed)
