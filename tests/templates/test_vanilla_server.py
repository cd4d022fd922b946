"""The vanilla template through Cog's real HTTP server, on the trainer's own output."""

import time

import numpy as np
import pytest
from PIL import Image

from buildkit.cog_client import UnknownInputError, succeeded
from core.schedulers import SCHEDULERS
from tests.templates.helpers import SMALL, decode_image, image_uri, photo_uri, serve


@pytest.fixture(scope="module")
def server(trained_weights, template_weights, tmp_path_factory):
    with serve(
        "vanilla", trained_weights, template_weights("vanilla"), tmp_path_factory.mktemp("vanilla")
    ) as running:
        yield running


def images(body) -> list[Image.Image]:
    return [decode_image(uri) for uri in body["output"]]


def generate(server, **inputs) -> list[Image.Image]:
    return images(succeeded(*server.predict(**{**SMALL, "seed": 1, **inputs})))


def test_default_prompt_is_the_instance_prompt_recorded_in_the_weights(server):
    status, body = server.predict(**SMALL, seed=3)
    succeeded(status, body)
    assert len(body["output"]) == 1
    assert "Using seed: 3" in body["logs"]


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_every_mode_returns_images_of_the_requested_size(server, mode):
    extra = {}
    if mode != "txt2img":
        extra["image"] = photo_uri(size=(100, 80))
    if mode == "inpaint":
        mask = Image.new("L", (100, 80))
        mask.paste(255, (20, 20, 80, 60))
        extra["mask"] = image_uri(mask)
    outputs = generate(server, width=72, height=64, **extra)
    assert [o.size for o in outputs] == [(72, 64)]


def test_same_seed_same_image_other_seed_other_image(server):
    first, again, other = (generate(server, seed=s)[0] for s in (7, 7, 8))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))


def test_num_outputs_streams_images_with_consecutive_seeds(server):
    three = generate(server, seed=20, num_outputs=3)
    second_alone = generate(server, seed=21)[0]
    assert len(three) == 3
    assert np.array_equal(np.asarray(three[1]), np.asarray(second_alone))


def test_images_stream_as_server_sent_events(server):
    assert server.settles_ready()
    events = server.stream(**SMALL, seed=1, num_outputs=3)
    outputs = [data for name, data in events if name == "output"]
    assert [e["index"] for e in outputs] == [0, 1, 2]
    assert all(e["chunk"].startswith("data:image/png;base64,") for e in outputs)
    assert events[-1][0] == "completed" and events[-1][1]["status"] == "succeeded"


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_scheduler_runs(server, scheduler):
    assert generate(server, scheduler=scheduler)[0].size == (64, 64)


def test_weighting_changes_the_image(server):
    plain = generate(server, prompt="a photo of sks cat")[0]
    weighted = generate(server, prompt="a photo of (sks)1.8 cat")[0]
    assert not np.array_equal(np.asarray(plain), np.asarray(weighted))


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"image": "data:text/plain;base64,bm90IGFuIGltYWdl"}, "image: "),
        ({"width": 68}, "width=68 must be a multiple of 8 from 64 to 1024"),
        ({"image": "PHOTO", "mask": "SMALL_MASK"}, "mask is 32x32 but image is 64x64"),
        ({"mask": "SMALL_MASK"}, "mask needs an image"),
    ],
)
def test_bad_inputs_fail_naming_the_input_and_the_server_keeps_serving(server, inputs, fragment):
    replacements = {"PHOTO": photo_uri(), "SMALL_MASK": image_uri(Image.new("L", (32, 32)))}
    inputs = {k: replacements.get(v, v) for k, v in inputs.items()}
    status, body = server.predict(**{**SMALL, **inputs})
    assert status == 200 and body["status"] == "failed", body
    assert fragment in body["error"] and "Traceback" not in body["error"]
    assert server.settles_ready()
    assert generate(server)[0].size == (64, 64)


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"scheduler": "K_WARP"}, "scheduler"),
        ({"prompt": "x" * 10_000}, "prompt"),
        ({"num_outputs": 11}, "num_outputs"),
    ],
)
def test_schema_violations_get_422(server, inputs, field):
    status, body = server.predict(**{**SMALL, **inputs})
    assert status == 422 and [e["loc"][-1] for e in body["detail"]] == [field]


@pytest.mark.parametrize("prompt", ["(" * 8, "(" * 12, "(" * 2000, "((((((((cat))))))))"])
def test_deeply_nested_prompts_are_answered_at_once_as_plain_text(server, prompt):
    started = time.monotonic()
    generate(server, prompt="a photo of sks cat")
    plain = time.monotonic() - started
    started = time.monotonic()
    status, body = server.predict(**SMALL, prompt=prompt, seed=1)
    nested = time.monotonic() - started
    succeeded(status, body)
    assert "prompt is used as plain text: parentheses nest" in body["logs"]
    assert nested < plain + 5  # compel alone took 35 s for 8 parens, 162 s for 9
    assert generate(server)[0].size == (64, 64)


@pytest.mark.parametrize(
    ("strength", "steps", "scheduler"),
    [(0.0, 2, "DDIM"), (0.05, 10, "K_EULER"), (0.3, 3, "HeunDiscrete"), (0.3, 3, "UniPCMultistep")],
)
@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_a_strength_too_small_for_one_step_still_runs_one(server, mode, strength, steps, scheduler):
    extra = {"image": photo_uri(size=(64, 64))}
    if mode == "inpaint":
        mask = Image.new("L", (64, 64))
        mask.paste(255, (16, 16, 48, 48))
        extra["mask"] = image_uri(mask)
    inputs = dict(prompt_strength=strength, num_inference_steps=steps, scheduler=scheduler)
    status, body = server.predict(**{**SMALL, **extra, **inputs, "seed": 2})
    succeeded(status, body)
    assert "is less than one denoising step; running one" in body["logs"]
    assert decode_image(body["output"][0]).size == (64, 64)


def test_an_unknown_input_name_is_refused_with_the_closest_valid_one(server):
    with pytest.raises(UnknownInputError, match=r"'prompt_strenght' \(did you mean 'prompt_str"):
        server.predict(**SMALL, prompt_strenght=0.5)
    assert generate(server)[0].size == (64, 64)
