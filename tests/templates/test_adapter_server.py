"""Adapter outputs and per-request LoRAs through Cog's real HTTP server, on tiny trained weights."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from buildkit.cog_client import data_uri, succeeded
from tests.templates.helpers import SMALL, decode_image, photo_uri, serve

PROMPT = "a photo of sks cat"


@pytest.fixture(scope="module")
def base(tiny_sd15, template_weights, tmp_path_factory):
    """The vanilla template on the plain base: where a request's lora_weights is tried."""
    tmp = tmp_path_factory.mktemp("base")
    with serve("vanilla", tiny_sd15, template_weights("vanilla"), tmp) as running:
        yield running


def adapter_server(name, weights, base_dir, template_weights, tmp):
    return serve(name, weights, template_weights(name), tmp, BASE_WEIGHTS_DIR=str(base_dir))


def run(server, **inputs) -> list[np.ndarray]:
    """The images of one request; an input given as None is left out (its default)."""
    inputs = {
        k: v for k, v in {**SMALL, "prompt": PROMPT, "seed": 2, **inputs}.items() if v is not None
    }
    body = succeeded(*server.predict(**inputs))
    return [np.asarray(decode_image(uri)) for uri in body["output"]]


def failed(server, **inputs) -> str:
    status, body = server.predict(**{**SMALL, "prompt": PROMPT, "seed": 2, **inputs})
    assert status == 200 and body["status"] == "failed", body
    assert server.settles_ready()
    return body["error"]


def lora_uri(adapter_outputs) -> str:
    return data_uri(adapter_outputs["lora"].zip, "application/zip")


def test_a_requests_lora_changes_the_image_and_the_next_request_is_the_base_again(
    base, adapter_outputs
):
    (plain,) = run(base)
    (lora,) = run(base, lora_weights=lora_uri(adapter_outputs))
    (unscaled,) = run(base, lora_weights=lora_uri(adapter_outputs), lora_scale=0.0)
    (after,) = run(base)
    assert np.abs(lora.astype(int) - plain).mean() > 1
    assert np.array_equal(unscaled, plain)
    assert np.array_equal(after, plain)  # unloaded: bit for bit


def bad_lora(adapter_outputs, tmp_path, kind: str) -> str:
    lora = adapter_outputs["lora"].folder / "pytorch_lora_weights.safetensors"
    path = tmp_path / f"{kind}.safetensors"
    if kind == "pickle":
        path = tmp_path / "lora.bin"
        torch.save({"weight": torch.zeros(2)}, path)  # written only, never loaded
    elif kind == "truncated":
        path.write_bytes(lora.read_bytes()[:-100])
    else:  # wrong shapes: every LoRA matrix one row and column too big
        state = {k: torch.zeros(v.shape[0] + 1, v.shape[1] + 1) for k, v in load_file(lora).items()}
        save_file(state, path)
    return data_uri(path, "application/octet-stream")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("pickle", "is a pickle"),
        ("truncated", "is truncated"),
        ("shapes", "could not be loaded onto this template's base (size mismatch"),
    ],
)
def test_a_hostile_lora_is_refused_by_name_and_the_server_keeps_serving(
    base, adapter_outputs, tmp_path, kind, message
):
    (plain,) = run(base)
    error = failed(base, lora_weights=bad_lora(adapter_outputs, tmp_path, kind))
    assert "lora_weights: " in error and message in error, error
    assert np.array_equal(run(base)[0], plain)


def test_a_base_with_another_fingerprint_boots_ready_and_says_why(
    adapter_outputs, tiny_sd15, template_weights, tmp_path
):
    weights = shutil.copytree(adapter_outputs["lora"].folder, tmp_path / "weights")
    manifest = json.loads((weights / "manifest.json").read_text())
    (weights / "manifest.json").write_text(json.dumps({**manifest, "base_fingerprint": "0" * 16}))
    with adapter_server("vanilla", weights, tiny_sd15, template_weights, tmp_path) as server:
        assert server.health()["status"] == "READY"
        error = failed(server)
        assert "0000000000000000" in error and "trained on base 'sd15'" in error, error
        assert "/src/base-weights" in error


def test_a_controlnet_template_runs_a_lora_output(
    adapter_outputs, tiny_sd15, template_weights, tmp_path
):
    weights = adapter_outputs["lora"].folder
    with adapter_server("controlnet-canny", weights, tiny_sd15, template_weights, tmp_path) as cn:
        (lora,) = run(cn, control_image=photo_uri())
        (unscaled,) = run(cn, control_image=photo_uri(), lora_scale=0.0)
    assert lora.shape == (64, 64, 3)
    assert np.abs(lora.astype(int) - unscaled).mean() > 1


def test_a_textual_inversion_output_uses_its_tokens_and_its_instance_prompt(
    base, adapter_outputs, tiny_sd15, template_weights, tmp_path
):
    weights = adapter_outputs["textual_inversion"].folder
    (without,) = run(base)
    with adapter_server("vanilla", weights, tiny_sd15, template_weights, tmp_path) as server:
        (default,) = run(server, prompt=None)
        (explicit,) = run(server)
        (placeholder,) = run(server, prompt="a photo of TOK cat")
        (other,) = run(server, prompt="a photo of a dog")
    assert np.array_equal(default, explicit)  # the default prompt is the instance prompt
    assert np.array_equal(placeholder, explicit)  # TOK and sks both mean the new tokens
    assert not np.array_equal(default, other)
    assert np.abs(explicit.astype(int) - without).mean() > 1  # the tokens are the learned ones
