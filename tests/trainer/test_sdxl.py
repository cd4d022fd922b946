"""The SDXL trainer on tiny SDXL: cog-sdxl's layout, both encoders, the pivot, masks, outputs."""

import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from trainer.sdxl_config import SDXLConfig

FAST = dict(resolution=64, max_train_steps=4, train_batch_size=2, lr_warmup_steps=0, seed=0)


def train(monkeypatch, base, photos, work, callbacks=(), **overrides):
    from trainer import sdxl_job

    monkeypatch.setenv("BASE_MODEL_DIR", str(base))
    monkeypatch.setenv("TRAINER_WORK_DIR", str(work))
    monkeypatch.setenv("PREPROCESS_WEIGHTS_DIR", str(work / "no-preprocess-models"))
    cfg = SDXLConfig(**{**FAST, "input_images": photos, **overrides})
    return sdxl_job.train(cfg, callbacks)


def untar(output, into):
    with tarfile.open(output) as archive:
        archive.extractall(into, filter="data")
    return into


@pytest.fixture(scope="module")
def lora_out(tmp_path_factory, tiny_sdxl, photo_zip):
    root = tmp_path_factory.mktemp("sdxl-lora")
    with pytest.MonkeyPatch.context() as monkeypatch:
        result = train(monkeypatch, tiny_sdxl, photo_zip, root / "w", lora_rank=4, lora_lr=5e-2)
    return untar(result.output, root / "out")


def test_the_lora_tar_has_cog_sdxls_files_and_ours(lora_out):
    names = {p.name for p in lora_out.iterdir()}
    assert {"lora.safetensors", "embeddings.pti", "special_params.json"} <= names
    assert {"pytorch_lora_weights.safetensors", "lora_kohya.safetensors"} <= names
    assert {"embeddings.safetensors", "manifest.json", "args.json"} <= names
    assert json.loads((lora_out / "special_params.json").read_text()) == {"TOK": "<s0><s1>"}
    manifest = json.loads((lora_out / "manifest.json").read_text())
    assert manifest["family"] == "sdxl" and manifest["method"] == "pivotal"
    assert manifest["base_fingerprint"] and manifest["adapter"]["tokens"] == ["<s0>", "<s1>"]
    pti = load_file(lora_out / "embeddings.pti")
    assert set(pti) == {"text_encoders_0", "text_encoders_1"}
    assert all(t.shape[0] == 2 for t in pti.values())  # cog-sdxl asserts exactly two tokens


def cog_sdxl_lora_loader(unet, path):
    """A loader written from cog-sdxl's documented format (predict.py load_trained_weights):
    keys `<attention processor>.<to_q|to_k|to_v|to_out>_lora.<up|down>.weight`, the rank read
    from `up`'s second dimension, no alpha (scale 1). Applied as W += up @ down."""
    tensors = load_file(path)
    modules = dict(unet.named_modules())
    for key, up in tensors.items():
        if not key.endswith("_lora.up.weight"):
            continue
        processor, projection = key.rsplit(".", 3)[0], key.rsplit(".", 3)[1].removesuffix("_lora")
        down = tensors[key.replace(".up.", ".down.")]
        assert up.shape[1] == down.shape[0]  # the rank, as cog-sdxl infers it
        attention = processor.removesuffix(".processor")
        name = "to_out.0" if projection == "to_out" else projection
        with torch.no_grad():
            modules[f"{attention}.{name}"].weight += up @ down
    return len(tensors)


def test_cog_sdxls_lora_layout_reproduces_the_trained_unet(lora_out, tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline

    plain = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    ours = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    ours.load_lora_weights(lora_out, weight_name="pytorch_lora_weights.safetensors")
    assert cog_sdxl_lora_loader(plain.unet, lora_out / "lora.safetensors") > 0
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    hidden = torch.randn(1, 77, 64, generator=torch.Generator().manual_seed(1))
    added = {"text_embeds": torch.randn(1, 32), "time_ids": torch.tensor([[64.0] * 6])}
    with torch.no_grad():
        a = plain.unet(sample, 10, hidden, added_cond_kwargs=added).sample
        b = ours.unet(sample, 10, hidden, added_cond_kwargs=added).sample
        base = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl).unet(
            sample, 10, hidden, added_cond_kwargs=added
        )
    assert torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, base.sample, atol=1e-4)


def test_clip_l_and_clip_g_embeddings_load_with_load_textual_inversion(lora_out, tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    state = load_file(lora_out / "embeddings.safetensors")
    tokens = ["<s0>", "<s1>"]
    pipe.load_textual_inversion(
        state["clip_l"], token=tokens, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
    )
    pipe.load_textual_inversion(
        state["clip_g"], token=tokens, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
    )
    pti = load_file(lora_out / "embeddings.pti")
    for i, (tokenizer, encoder) in enumerate(
        [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    ):
        ids = tokenizer.convert_tokens_to_ids(tokens)
        rows = encoder.get_input_embeddings().weight[ids]
        assert torch.equal(rows, pti[f"text_encoders_{i}"])


class Watch:
    def __init__(self):
        self.rows, self.unet_sum = [], []

    def __call__(self, event):
        parts = event.method.components
        self.rows.append(
            [
                parts[n].get_input_embeddings().weight[-2:].detach().clone()
                for n in event.method.text_encoders
            ]
        )
        self.unet_sum.append(sum(p.double().sum().item() for p in parts["unet"].parameters()))


def test_the_pivot_freezes_both_encoders_tokens_at_ti_fraction(
    monkeypatch, tmp_path, tiny_sdxl, photo_zip
):
    watch = Watch()
    train(
        monkeypatch,
        tiny_sdxl,
        photo_zip,
        tmp_path / "w",
        callbacks=[watch],
        max_train_steps=6,
        ti_fraction=0.5,
        is_lora=False,
        unet_learning_rate=1e-3,
    )
    for encoder in (0, 1):
        rows = [step[encoder] for step in watch.rows]
        assert not torch.equal(rows[0], rows[2])  # steps 1-3 train the tokens
        assert torch.equal(rows[2], rows[3]) and torch.equal(rows[3], rows[5])  # then frozen
    assert len(set(watch.unet_sum)) == 6  # the full fine-tune trains the UNet at every step


def test_full_fine_tune_exports_a_changed_unet(monkeypatch, tmp_path, tiny_sdxl, photo_zip):
    result = train(
        monkeypatch, tiny_sdxl, photo_zip, tmp_path / "w", is_lora=False, unet_learning_rate=1e-3
    )
    out = untar(result.output, tmp_path / "out")
    trained = load_file(out / "unet.safetensors")
    base = load_file(tiny_sdxl / "unet" / "diffusion_pytorch_model.safetensors")
    assert trained.keys() == base.keys()
    assert any(not torch.equal(trained[k], base[k]) for k in base)
    assert json.loads((out / "manifest.json").read_text())["adapter"]["unet"] == "unet.safetensors"


def test_max_grad_norm_clips(monkeypatch, tmp_path, tiny_sdxl, photo_zip):
    def lora_b(output):
        return load_file(untar(output, output.parent / "x") / "lora.safetensors")

    plain = lora_b(train(monkeypatch, tiny_sdxl, photo_zip, tmp_path / "a").output)
    clipped = lora_b(
        train(monkeypatch, tiny_sdxl, photo_zip, tmp_path / "b", max_grad_norm=1e-6).output
    )
    up = [k for k in plain if k.endswith("up.weight")]
    size = sum(plain[k].abs().sum() for k in up), sum(clipped[k].abs().sum() for k in up)
    assert size[1] < 0.1 * size[0]  # a tiny norm bound makes tiny updates


def test_one_mask_per_photo_however_many_faces():
    from trainer.preprocess import face_mask, salient_square

    two = face_mask((100, 60), [(5, 5, 25, 30), (60, 10, 90, 40)])
    none = face_mask((100, 60), [])
    assert two.size == none.size == (100, 60)
    array = np.asarray(two)
    assert array[15, 15] == 255 and array[25, 75] == 255 and array[55, 50] == 0
    assert np.asarray(none).min() == 255  # no face: every pixel counts
    image = Image.new("RGB", (100, 60))
    right = Image.new("L", (100, 60), 0)
    right.paste(255, (80, 0, 100, 60))
    square, mask = salient_square(image, right, salience=True)
    assert square.size == mask.size == (60, 60) and np.asarray(mask)[:, -1].min() == 255


def test_a_missing_preprocessing_model_is_said_in_a_log_line(monkeypatch, tmp_path, caplog):
    from trainer.photos import Photo
    from trainer.preprocess import prepare_photos

    monkeypatch.setenv("PREPROCESS_WEIGHTS_DIR", str(tmp_path))
    archive = tmp_path / "p.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    cfg = SDXLConfig(input_images=archive, mask_target_prompts="a cat", resolution=128)
    photos = [
        Photo("a.jpg", Image.new("RGB", (80, 64))),
        Photo("b.jpg", Image.new("RGB", (64, 64)), "mine"),
    ]
    with caplog.at_level("WARNING", logger="trainer.preprocess"):
        prepared = prepare_photos(photos, cfg)
    for stage in ("clipseg", "blip", "swin2sr"):
        assert f"no {stage} model" in caplog.text
    assert [p.caption for p in prepared] == ["a photo of TOK,", "mine"]  # the archive's wins
    assert all(p.mask is None and p.image.size == (64, 64) for p in prepared)


def test_config_names_the_input_and_what_is_allowed(tmp_path):
    from trainer.config import ConfigError

    archive = tmp_path / "p.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(ConfigError, match="caption_prefix='a photo of a dog' is not allowed"):
        SDXLConfig(input_images=archive, caption_prefix="a photo of a dog")
    with pytest.raises(
        ConfigError, match="train_text_encoder=True is not allowed: only with is_lora"
    ):
        SDXLConfig(input_images=archive, is_lora=False, train_text_encoder=True)
    assert SDXLConfig(input_images=archive).seed is not None  # cog-sdxl: empty seed is random
