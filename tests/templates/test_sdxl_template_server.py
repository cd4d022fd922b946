"""The SDXL template through Cog's real HTTP server, on the SDXL trainer's own trained_model.tar.

A photo zip goes through the SDXL trainer's Cog server; one template server serves what the
build step makes of its pivotal training (its LoRA and its tokens in
/src/weights, the base in /src/base-weights, the tiny refiner in template-weights/). Requests
use cog-sdxl's input names; what each mode returns is compared with the bare base, run in
this process on the same CPU (the same bits: every image uses its own seeded generator).
"""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
from PIL import Image

from buildkit.cog_client import CogServer, data_uri, decode_data_uri, succeeded
from core.manifest import Family
from core.pipelines import Engine
from core.requests import GenerationRequest
from core.weights import find
from tests.templates.helpers import decode_image, image_uri, photo_uri, serve

SMALL = dict(
    width=64,
    height=64,
    num_inference_steps=6,
    seed=3,
    scheduler="K_EULER",
    disable_safety_checker=True,
)
WORD = "a photo of TOK"  # the trained tokens stand for TOK
PLAIN = "a photo of a cat"  # no trained token: only the LoRA can change it
# tiny models need large steps for the LoRA and the tokens to show at lora_scale 0.6
TRAINING = dict(
    resolution=64,
    max_train_steps=4,
    train_batch_size=2,
    lr_warmup_steps=0,
    seed=0,
    lora_lr=0.5,
    ti_lr=0.5,
)


@pytest.fixture(scope="module")
def trained_tar(tmp_path_factory, tiny_sdxl, photo_zip):
    """A photo zip through the SDXL trainer's own Cog server: its trained_model.tar."""
    work = tmp_path_factory.mktemp("sdxl-trained")
    env = {
        "BASE_MODEL_DIR": str(tiny_sdxl),
        "TRAINER_WORK_DIR": str(work / "work"),
        "PREPROCESS_WEIGHTS_DIR": str(work / "none"),
        "COG_TEST_LOG_DIR": str(work),
    }
    with CogServer("trainer-sdxl", env=env) as trainer:
        status, body = trainer.predict(
            input_images=data_uri(photo_zip, "application/zip"), **TRAINING
        )
    path = work / "trained_model.tar"
    path.write_bytes(decode_data_uri(succeeded(status, body)["output"]))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_tar, tiny_sdxl, template_weights):
    weights = tmp_path_factory.mktemp("sdxl-weights") / "weights"
    with tarfile.open(trained_tar) as archive:
        archive.extractall(weights, filter="data")  # what the build step copies to /src/weights
    tmp = tmp_path_factory.mktemp("sdxl-server")
    env = {"BASE_WEIGHTS_DIR": str(tiny_sdxl)}
    with serve("sdxl", weights, template_weights("sdxl"), tmp, **env) as running:
        yield running


@pytest.fixture(scope="module")
def bare_base(tiny_sdxl, template_weights):
    """The base alone, in this process: what lora_scale=0 without TOK must equal."""
    return Engine.load(find(tiny_sdxl, (Family.SDXL,)), template_dir=template_weights("sdxl"))


def run(server, **inputs) -> list[np.ndarray]:
    body = succeeded(*server.predict(**{**SMALL, "prompt": PLAIN, **inputs}))
    return [np.asarray(decode_image(uri)).astype(int) for uri in body["output"]]


def base_image(engine, **inputs) -> np.ndarray:
    fields = {**SMALL, "prompt": PLAIN, **inputs}
    fields["disable_safety_check"] = fields.pop("disable_safety_checker")
    (image,) = engine.generate(GenerationRequest(**fields))
    return np.asarray(image).astype(int)


def test_the_trained_tar_generates_and_lora_scale_zero_is_the_base(server, bare_base):
    (trained,) = run(server, lora_scale=0.6)
    (off,) = run(server, lora_scale=0.0)
    assert trained.shape == (64, 64, 3)
    base = base_image(bare_base)
    print(
        "DEBUG",
        np.abs(off - base).mean(),
        np.abs(off - base).max(),
        np.abs(trained - off).mean(),
        np.abs(trained - base).mean(),
    )
    assert np.array_equal(off, base_image(bare_base))  # the LoRA off: the base, bit for bit
    assert np.abs(trained - off).max() > 8  # the LoRA on: another image


def test_tok_uses_the_trained_embeddings_in_both_encoders(server, bare_base):
    (tokens,) = run(server, prompt=WORD, lora_scale=0.0)
    word = base_image(bare_base, prompt=WORD)  # the base reads "TOK" as a plain word
    assert np.abs(tokens - word).max() > 8


def test_every_refine_mode_and_inpainting_work_and_the_refiner_changes_the_image(server):
    (plain,) = run(server)
    (expert,) = run(server, refine="expert_ensemble_refiner", high_noise_frac=0.5)
    (refined,) = run(server, refine="base_image_refiner", refine_steps=3)
    assert np.abs(plain - expert).max() > 8  # the refiner denoised the last half
    assert np.abs(plain - refined).max() > 2  # one refining step at strength 0.3: a touch
    mask = Image.new("L", (64, 64))
    mask.paste(255, (16, 16, 48, 48))
    image = photo_uri("coffee", (64, 64))
    for refine in ("no_refiner", "expert_ensemble_refiner", "base_image_refiner"):
        (painted,) = run(server, image=image, mask=image_uri(mask), refine=refine)
        (moved,) = run(server, image=image, refine=refine, prompt_strength=0.6)
        assert painted.shape == moved.shape == (64, 64, 3)
        # the mask is used; what it keeps cannot be seen here: the tiny random VAE does not
        # reconstruct a photo
        assert not np.array_equal(painted, moved)


def test_the_watermark_is_invisible_decodable_and_can_be_turned_off(server):
    from diffusers.pipelines.stable_diffusion_xl.watermark import WATERMARK_BITS
    from imwatermark import WatermarkDecoder

    size = dict(width=256, height=256, num_inference_steps=2)  # diffusers marks 256 px and up
    (marked,) = run(server, **size)
    (unmarked,) = run(server, **size, apply_watermark=False)
    decoder = WatermarkDecoder("bits", len(WATERMARK_BITS))

    def agreement(image: np.ndarray) -> float:
        bits = decoder.decode(np.ascontiguousarray(image[:, :, ::-1].astype(np.uint8)), "dwtDct")
        return float(np.mean(np.array(bits) == np.array(WATERMARK_BITS)))

    assert agreement(marked) > 0.8 > 0.65 > agreement(unmarked)
    assert 0 < np.abs(marked - unmarked).mean() < 10  # a few levels of 255 on average


def test_replicate_weights_takes_a_trained_model_tar_for_one_request(server, trained_tar):
    (own,) = run(server, lora_scale=0.6)
    tar = data_uri(trained_tar, "application/x-tar")
    (stacked,) = run(server, lora_scale=0.6, replicate_weights=tar)
    (again,) = run(server, lora_scale=0.6)
    assert np.abs(stacked - own).max() > 8  # a second copy of the LoRA: twice the change
    assert np.array_equal(own, again)  # and only for that request


def test_bad_sdxl_inputs_are_named_and_the_server_keeps_serving(server, tiny_sd15, tmp_path):
    pickle = tmp_path / "weights.bin"
    pickle.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    sd15_lora = next((tiny_sd15 / "unet").glob("*.safetensors"))  # not a LoRA at all
    cases = [
        (dict(refine="best"), "refine"),
        (dict(high_noise_frac=1.0, refine="expert_ensemble_refiner"), "leaves the refiner no"),
        (dict(width=2056), "width"),
        (dict(replicate_weights=data_uri(pickle, "application/octet-stream")), "a pickle"),
        (dict(replicate_weights=data_uri(sd15_lora, "")), "replicate_weights: the file holds no"),
        (
            dict(replicate_weights=data_uri(pickle, ""), lora_weights=data_uri(pickle, "")),
            "not both",
        ),
    ]
    for inputs, named in cases:
        status, body = server.predict(**{**SMALL, "prompt": PLAIN, **inputs})
        message = str(body.get("detail") or body.get("error"))
        assert status == 422 or body["status"] == "failed", body
        assert named in message, message
    assert run(server)[0].shape == (64, 64, 3)


def test_a_pivotal_tar_given_per_request_brings_its_tokens_for_that_request(
    server, bare_base, trained_tar
):
    (trained,) = run(server, prompt=WORD, lora_scale=0.0)  # the weights' own tokens
    uploaded = base_image(bare_base, prompt=WORD, lora_scale=0.0, lora_weights=trained_tar)
    word = base_image(bare_base, prompt=WORD)  # without it, TOK is a plain word again
    assert np.array_equal(uploaded, trained)
    assert not np.array_equal(uploaded, word)
