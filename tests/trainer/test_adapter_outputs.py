"""Adapter outputs load where users take them: diffusers, kohya loaders, Automatic1111."""

import zipfile

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open

from tests.trainer.helpers import train

PROMPT = "a photo of sks cat"
SETTINGS = dict(with_prior_preservation=False, max_train_steps=6, train_text_encoder=False)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, tiny_sd15, photo_zip):
    """One trained output per method, unzipped, built once for the module."""
    root = tmp_path_factory.mktemp("adapters")
    runs = {
        "lora": dict(method="lora", lora_lr=5e-2, lora_rank=4, lora_alpha=2.0),
        "lora_te": dict(method="lora", lora_lr=5e-2, lora_rank=4, train_text_encoder=True),
        "textual_inversion": dict(method="textual_inversion", ti_lr=5e-2),
        "full": dict(method="full"),
    }
    found = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, overrides in runs.items():
            result = train(
                monkeypatch, tiny_sd15, photo_zip, root / name, **{**SETTINGS, **overrides}
            )
            zipfile.ZipFile(result.output).extractall(root / f"{name}-out")
            found[name] = (root / f"{name}-out", result.output.stat().st_size)
    return found


def pipeline(tiny_sd15):
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image(pipe, prompt=PROMPT, **kwargs) -> np.ndarray:
    generator = torch.Generator().manual_seed(0)
    result = pipe(prompt, num_inference_steps=2, height=64, width=64, generator=generator, **kwargs)
    return np.asarray(result.images[0], dtype=float)


def test_the_lora_loads_in_plain_diffusers_and_changes_the_image(outputs, tiny_sd15):
    folder, _ = outputs["lora"]
    pipe = pipeline(tiny_sd15)
    before = image(pipe)
    pipe.load_lora_weights(folder, weight_name="pytorch_lora_weights.safetensors")
    after = image(pipe)
    assert np.abs(after - before).mean() > 0.5


def test_the_kohya_file_round_trips_to_the_same_image_with_its_real_alpha(outputs, tiny_sd15):
    folder, _ = outputs["lora"]
    with safe_open(folder / "lora_kohya.safetensors", "pt") as kohya:
        keys = list(kohya.keys())
        alphas = {kohya.get_tensor(k).item() for k in keys if k.endswith(".alpha")}
        metadata = kohya.metadata()
    assert all(k.startswith("lora_unet_") for k in keys) and alphas == {2.0}
    assert metadata["ss_network_dim"] == "4" and metadata["ss_network_alpha"] == "2"
    diffusers_format, kohya_format = pipeline(tiny_sd15), pipeline(tiny_sd15)
    diffusers_format.load_lora_weights(folder, weight_name="pytorch_lora_weights.safetensors")
    kohya_format.load_lora_weights(folder, weight_name="lora_kohya.safetensors")
    assert np.abs(image(diffusers_format) - image(kohya_format)).max() <= 1.0


def test_the_text_encoder_lora_is_in_both_files(outputs):
    folder, _ = outputs["lora_te"]
    with safe_open(folder / "pytorch_lora_weights.safetensors", "pt") as lora:
        assert any(k.startswith("text_encoder.") for k in lora.keys())  # noqa: SIM118
    with safe_open(folder / "lora_kohya.safetensors", "pt") as kohya:
        assert any(k.startswith("lora_te1_") for k in kohya.keys())  # noqa: SIM118


def test_the_automatic1111_embedding_loads_with_load_textual_inversion(outputs, tiny_sd15):
    folder, _ = outputs["textual_inversion"]
    pipe = pipeline(tiny_sd15)
    before = image(pipe)
    pipe.load_textual_inversion(folder / "embeddings.safetensors", token="sks")
    assert np.abs(image(pipe) - before).mean() > 0.5  # "sks" now means the learned vectors
    learned = safe_open(folder / "embeddings.safetensors", "pt").get_tensor("emb_params")
    ids = pipe.tokenizer.convert_tokens_to_ids(["sks", "sks_1"])
    table = pipe.text_encoder.get_input_embeddings().weight
    assert torch.equal(table[ids], learned)


def test_an_adapter_output_is_a_small_fraction_of_a_full_one(outputs):
    _, full = outputs["full"]
    for name in ("lora", "lora_te", "textual_inversion"):
        assert outputs[name][1] < 0.1 * full, name
