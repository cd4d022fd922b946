"""Adapter outputs on top of a base, in-process: finding, checking, token rewriting, LoRA files."""

import json
import shutil
import zipfile

import numpy as np
import pytest

from core.adapters import BaseMismatchError, find_weights
from core.errors import UserError, WeightsMissingError
from core.lora_uploads import lora_file
from core.manifest import Adapter
from core.pipelines import Engine
from core.prompts import PromptEncoder
from core.requests import GenerationRequest
from core.weights import find

SMALL = dict(width=64, height=64, num_inference_steps=2, disable_safety_check=True, seed=4)
PROMPT = "a photo of sks cat"
TI = Adapter(embeddings="embeddings.safetensors", token_string="sks", tokens=("<s0>", "<s1>"))


def use(monkeypatch, weights, base):
    monkeypatch.setenv("WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("BASE_WEIGHTS_DIR", str(base))


def image(engine, **request) -> np.ndarray:
    (result,) = engine.generate(GenerationRequest(**{"prompt": PROMPT, **SMALL, **request}))
    return np.asarray(result)


@pytest.mark.parametrize(
    ("prompt", "rewritten"),
    [
        ("a photo of TOK", "a photo of <s0><s1>"),
        ("a photo of sks cat, SKS too", "a photo of <s0><s1> cat, <s0><s1> too"),
        ("a (TOK)1.5 cat", "a (<s0><s1>)1.5 cat"),
        ("sksy <sks> TOKEN stays", "sksy <sks> TOKEN stays"),
    ],
)
def test_the_trained_word_and_tok_become_the_new_tokens(prompt, rewritten):
    assert TI.rewrite(prompt) == rewritten


def test_weighting_syntax_still_applies_to_the_new_tokens(tiny_sd15):
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd15, subfolder="tokenizer")
    encoder = PromptEncoder(
        tokenizer, CLIPTextModel.from_pretrained(tiny_sd15, subfolder="text_encoder"), TI.rewrite
    )
    (fragment,) = encoder.parse(encoder.rewrite("a (TOK)1.5 cat")).prompts[0].children[1:2]
    assert (fragment.text, fragment.weight) == ("<s0><s1>", 1.5)


def test_an_adapter_output_is_found_with_its_base(monkeypatch, adapter_outputs, tiny_sd15):
    use(monkeypatch, adapter_outputs["lora"].folder, tiny_sd15)
    base, adapter = find_weights()
    assert base.directory == tiny_sd15 and adapter.manifest.method.value == "lora"
    monkeypatch.setenv("WEIGHTS_DIR", str(tiny_sd15))
    assert find_weights()[1] is None  # a full pipeline loads as before


def test_an_adapter_without_its_base_says_where_the_base_goes(
    monkeypatch, adapter_outputs, tmp_path
):
    use(monkeypatch, adapter_outputs["lora"].folder, tmp_path / "none")
    with pytest.raises(WeightsMissingError, match="/src/base-weights"):
        find_weights()


def test_a_base_with_another_fingerprint_is_refused_naming_both(
    monkeypatch, adapter_outputs, tiny_sd15, tmp_path
):
    other = shutil.copytree(tiny_sd15, tmp_path / "other-base")
    config = other / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "steps_offset": 0}))
    use(monkeypatch, adapter_outputs["lora"].folder, other)
    expected = json.loads((adapter_outputs["lora"].folder / "manifest.json").read_text())
    with pytest.raises(BaseMismatchError) as error:
        find_weights()
    message = str(error.value)
    assert expected["base_fingerprint"] in message and "other-base/" in message
    assert "trained on" in message


@pytest.mark.parametrize("output", ["lora", "lora_te"])
def test_lora_scale_zero_is_the_base_and_the_default_scale_changes_it(
    output, monkeypatch, adapter_outputs, tiny_sd15, template_weights
):
    template = template_weights("vanilla")
    base = Engine.load(find(tiny_sd15), template_dir=template)
    use(monkeypatch, adapter_outputs[output].folder, tiny_sd15)
    weights, adapter = find_weights()
    engine = Engine.load(weights, template_dir=template, adapter=adapter)
    plain = image(base)
    assert np.array_equal(image(engine, lora_scale=0.0), plain)
    lora = image(engine)
    assert np.abs(lora.astype(int) - plain).mean() > 1
    assert np.array_equal(image(engine), lora)  # the scale did not drift
    assert not np.array_equal(image(engine, lora_scale=1.0), lora)
    in_text_encoder = {key[0] for key in engine.prompts.cache}
    assert in_text_encoder == (
        {()}
        if output == "lora"
        else {(("weights",), 0.0), (("weights",), 0.6), (("weights",), 1.0)}
    )


def hostile(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_lora_file_is_taken_from_a_zip_or_a_bare_file(adapter_outputs, tmp_path):
    folder, name = lora_file(adapter_outputs["lora"].zip, tmp_path / "a")
    assert (folder / name).name == "pytorch_lora_weights.safetensors"
    bare = adapter_outputs["lora"].folder / "lora_kohya.safetensors"
    folder, name = lora_file(shutil.copy(bare, tmp_path / "tmpx1file"), tmp_path)
    assert name.endswith(".safetensors") and (folder / name).read_bytes() == bare.read_bytes()


@pytest.mark.parametrize("kind", ["pickle", "truncated", "full", "ti_zip", "pickle_zip", "text"])
def test_hostile_lora_files_are_refused_by_name(kind, adapter_outputs, tiny_sd15, tmp_path):
    lora = (adapter_outputs["lora"].folder / "pytorch_lora_weights.safetensors").read_bytes()
    if kind == "pickle":
        path = hostile(tmp_path, "tmpafile.bin", b"\x80\x04\x95" + b"\0" * 64)
    elif kind == "truncated":
        path = hostile(tmp_path, "tmpbfile", lora[: len(lora) // 2])
    elif kind == "full":
        path = next((tiny_sd15 / "unet").glob("*.safetensors"))
    elif kind == "ti_zip":
        path = adapter_outputs["textual_inversion"].zip
    elif kind == "pickle_zip":
        path = tmp_path / "tmpcfile.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("lora.bin", b"\x80\x04\x95")
    else:
        path = hostile(tmp_path, "tmpdfile", b"hello")
    expected = {
        "pickle": "is a pickle",
        "truncated": "is truncated",
        "full": "holds no LoRA weights",
        "ti_zip": "textual_inversion output, which holds no LoRA",
        "pickle_zip": "lora.bin, a pickle",
        "text": "not a .safetensors file",
    }[kind]
    with pytest.raises(UserError, match="lora_weights") as error:
        lora_file(path, tmp_path / "scratch")
    assert expected in str(error.value)
