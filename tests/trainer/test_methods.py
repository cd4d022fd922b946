"""LoRA, textual inversion and pivotal tuning: what trains, what stays, what comes out."""

import zipfile

import pytest
import torch
from safetensors.torch import load, load_file

from core.manifest import Manifest, Method
from tests.trainer.helpers import train

FAST = dict(with_prior_preservation=False, max_train_steps=4, train_text_encoder=False)


def unzip(output, into):
    zipfile.ZipFile(output).extractall(into)
    return into


def base_state(tiny_sd15, part):
    name = {"unet": "unet/diffusion_pytorch_model", "text_encoder": "text_encoder/model"}[part]
    return load_file(tiny_sd15 / f"{name}.safetensors")


class Watch:
    """A step callback keeping what the method's modules hold after each step."""

    def __init__(self):
        self.embeddings, self.unet = [], None

    def __call__(self, event):
        components = event.method.components
        weight = components["text_encoder"].get_input_embeddings().weight
        self.embeddings.append(weight.detach().clone())
        self.unet = {k: v.detach().clone() for k, v in components["unet"].state_dict().items()}


def test_lora_trains_only_its_layers_and_exports_only_them(
    monkeypatch, tmp_path, tiny_sd15, photo_zip
):
    watch = Watch()
    result = train(
        monkeypatch, tiny_sd15, photo_zip, tmp_path / "w", method="lora", callbacks=[watch], **FAST
    )
    base = base_state(tiny_sd15, "unet")
    lora = {k: v for k, v in watch.unet.items() if ".lora_" in k}
    assert lora and any(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k)
    for key, value in watch.unet.items():
        if ".lora_" not in key:
            assert torch.equal(value, base[key.replace(".base_layer", "")]), key
    out = unzip(result.output, tmp_path / "out")
    names = {p.name for p in out.iterdir()}
    assert names == {
        "pytorch_lora_weights.safetensors",
        "lora_kohya.safetensors",
        "manifest.json",
        "args.json",
    }
    manifest = Manifest.read(out)
    assert manifest.method is Method.LORA and manifest.adapter.lora_rank == 32
    assert manifest.base_fingerprint and manifest.adapter.lora == "pytorch_lora_weights.safetensors"


def test_textual_inversion_changes_only_the_new_rows(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    watch = Watch()
    result = train(
        monkeypatch,
        tiny_sd15,
        photo_zip,
        tmp_path / "w",
        method="textual_inversion",
        ti_lr=1e-2,
        callbacks=[watch],
        **FAST,
    )
    base = base_state(tiny_sd15, "text_encoder")["embeddings.token_embedding.weight"]
    first = len(base)
    for weight in watch.embeddings:
        assert torch.equal(weight[:first], base)  # every other row, bit for bit, at every step
    assert not torch.equal(watch.embeddings[0][first:], watch.embeddings[-1][first:])
    assert all(torch.equal(v, base_state(tiny_sd15, "unet")[k]) for k, v in watch.unet.items())
    out = unzip(result.output, tmp_path / "out")
    rows = load_file(out / "embeddings.safetensors")["emb_params"]
    assert rows.shape == (2, base.shape[1]) and torch.equal(rows, watch.embeddings[-1][first:])
    assert (out / "special_params.json").read_text().strip() == '{"sks": "<s0><s1>"}'


def test_pivotal_freezes_the_tokens_at_ti_fraction_and_lora_goes_on(
    monkeypatch, tmp_path, tiny_sd15, photo_zip
):
    watch, lrs = Watch(), []
    lora_norms = []

    def lora_norm(event):
        unet = event.method.components["unet"]
        lora_norms.append(
            sum(p.abs().sum().item() for n, p in unet.named_parameters() if "lora_B" in n)
        )
        lrs.append(event.lr)

    train(
        monkeypatch,
        tiny_sd15,
        photo_zip,
        tmp_path / "w",
        method="pivotal",
        ti_fraction=0.5,
        ti_lr=1e-2,
        lr_scheduler="linear",
        callbacks=[watch, lora_norm],
        **{**FAST, "max_train_steps": 6},
    )
    rows = [w[-2:] for w in watch.embeddings]
    assert not torch.equal(rows[0], rows[2])  # steps 1-3 train the tokens
    assert torch.equal(rows[2], rows[3]) and torch.equal(rows[3], rows[5])  # then frozen
    assert len(set(lora_norms[2:])) == 4  # LoRA still learns after the pivot
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[3]  # the schedule still drives it


@pytest.mark.parametrize("method", ["lora", "textual_inversion", "pivotal"])
def test_a_crashed_run_of_any_method_resumes_bit_identical(
    monkeypatch, tmp_path, tiny_sd15, photo_zip, method
):
    def crash_at_step_3(event):
        if event.step == 3:
            raise KeyboardInterrupt

    settings = {
        **FAST,
        "method": method,
        "checkpointing_steps": 2,
        "train_text_encoder": True,
        "max_train_steps": 5,
    }
    with pytest.raises(KeyboardInterrupt):
        train(
            monkeypatch,
            tiny_sd15,
            photo_zip,
            tmp_path / "a",
            callbacks=[crash_at_step_3],
            **settings,
        )
    resumed = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "a", **settings)
    fresh = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "b", **settings)
    assert resumed.resumed_from == 2
    with zipfile.ZipFile(resumed.output) as a, zipfile.ZipFile(fresh.output) as b:
        weights = [n for n in a.namelist() if n.endswith(".safetensors")]
        assert weights
        for name in weights:
            left, right = load(a.read(name)), load(b.read(name))
            assert left.keys() == right.keys(), name
            assert all(torch.equal(left[k], right[k]) for k in left), name


@pytest.mark.parametrize(
    ("method", "settings", "target"),
    [
        ("lora", dict(lora_lr=2e-3), 0.95),
        ("pivotal", dict(lora_lr=2e-3, ti_lr=5e-2), 0.95),
        ("textual_inversion", dict(ti_lr=5e-2), 1.0),  # the tiny text encoder barely conditions
    ],
)
def test_each_method_lowers_the_loss_on_the_instance_photos(
    monkeypatch, tmp_path, tiny_sd15, photo_zip, method, settings, target
):
    from tests.trainer.helpers import adapter_loss
    from trainer.photos import load_archive

    result = train(
        monkeypatch,
        tiny_sd15,
        photo_zip,
        tmp_path / "w",
        method=method,
        center_crop=True,
        **{**FAST, "max_train_steps": 150, **settings},
    )
    out = unzip(result.output, tmp_path / "out")
    photos = [
        p.image
        for p in load_archive(photo_zip, tmp_path / "x", label="instance_data", resolution=64)
    ]
    before = adapter_loss(None, photos, "a photo of sks cat", tiny_sd15)
    after = adapter_loss(out, photos, "a photo of sks cat", tiny_sd15)
    assert after < target * before, (before, after)
