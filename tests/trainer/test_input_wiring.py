"""Every trainer input changes what training does (replicate/dreambooth shipped some dead).

Most inputs are shown by the trained weights differing from a baseline run; inputs that must not
change the weights are shown by what they do change (samples, logs, steps, checkpoints).
"""

import json
import logging
import zipfile

import pytest

from buildkit.sample_photos import write_photo_zip
from core.errors import UserError
from tests.trainer.helpers import FAST, same, train, weights
from trainer.config import TrainConfig

CHANGES_THE_WEIGHTS = {
    "instance_prompt": "a photo of zwx cat",
    "class_prompt": "a painting of a cat",
    "num_class_images": 2,
    "pad_tokens": True,
    "with_prior_preservation": False,
    "prior_loss_weight": 0.25,
    "seed": 7,
    "resolution": 72,
    "center_crop": True,
    "train_batch_size": 2,
    "gradient_accumulation_steps": 2,
    "learning_rate": 3e-4,
    "lr_scheduler": "linear",
    "lr_warmup_steps": 2,
    "use_8bit_adam": True,
    "adam_beta1": 0.5,
    "adam_beta2": 0.9,
    "adam_weight_decay": 0.5,
    "adam_epsilon": 1e-2,
    "max_grad_norm": 1e-4,
    "offset_noise": 0.2,
    "snr_gamma": 1.0,
    "hflip": True,
    "mixed_precision": "bf16",
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_sd15, photo_zip):
    work = tmp_path_factory.mktemp("wiring")
    with pytest.MonkeyPatch.context() as monkeypatch:
        baseline = train(monkeypatch, tiny_sd15, photo_zip, work / "baseline")
    return {
        "work": work,
        "base": tiny_sd15,
        "photos": photo_zip,
        "unet": weights(baseline.output),
        "text_encoder": weights(baseline.output, "text_encoder"),
    }


def run(monkeypatch, shared, name, **overrides):
    return train(monkeypatch, shared["base"], shared["photos"], shared["work"] / name, **overrides)


def test_every_input_is_covered_by_a_wiring_test():
    covered = set(CHANGES_THE_WEIGHTS) | {
        "instance_data",
        "class_data",
        "save_sample_prompt",
        "save_sample_negative_prompt",
        "n_save_sample",
        "save_guidance_scale",
        "save_infer_steps",
        "train_text_encoder",
        "sample_batch_size",
        "num_train_epochs",
        "max_train_steps",
        "gradient_checkpointing",
        "scale_lr",
        "ckpt_base",
        "checkpointing_steps",
        "resume",
        "method",  # tests/trainer/test_methods.py
        *METHOD_INPUTS,
    }
    assert covered == set(TrainConfig.field_names())


@pytest.mark.parametrize("name", sorted(CHANGES_THE_WEIGHTS))
def test_input_changes_the_trained_weights(monkeypatch, shared, name):
    result = run(monkeypatch, shared, name, **{name: CHANGES_THE_WEIGHTS[name]})
    assert not same(weights(result.output), shared["unet"])


# Inputs of the adapter methods: each changes the adapter a run of that method exports.
METHOD_INPUTS = {
    "lora_rank": ("lora", 8),
    "lora_alpha": ("lora", 4.0),
    "lora_lr": ("lora", 1e-3),
    "ti_lr": ("textual_inversion", 1e-2),
    "num_new_tokens": ("textual_inversion", 3),
    "token_string": ("textual_inversion", "cat"),
    "initializer_token": ("textual_inversion", "dog"),
    "ti_fraction": ("pivotal", 0.25),
}


def adapter_tensors(output) -> dict:
    from safetensors.torch import load

    with zipfile.ZipFile(output) as archive:
        names = [n for n in archive.namelist() if n.endswith(".safetensors")]
        return {f"{n}:{k}": v for n in names for k, v in load(archive.read(n)).items()}


@pytest.mark.parametrize("name", sorted(METHOD_INPUTS))
def test_method_input_changes_the_exported_adapter(monkeypatch, shared, name):
    method, value = METHOD_INPUTS[name]
    settings = dict(method=method, max_train_steps=4, ti_lr=3e-3, lora_lr=3e-4)
    baseline = run(monkeypatch, shared, f"{method}-baseline", **settings)
    changed = run(monkeypatch, shared, f"{method}-{name}", **{**settings, name: value})
    before, after = adapter_tensors(baseline.output), adapter_tensors(changed.output)
    assert before.keys() != after.keys() or not same(before, after)


def test_instance_data_changes_the_trained_weights(monkeypatch, shared, tmp_path):
    other = write_photo_zip(tmp_path / "other.zip", names=("coffee", "rocket"), size=(96, 72))
    result = train(monkeypatch, shared["base"], other, shared["work"] / "instance_data")
    assert not same(weights(result.output), shared["unet"])


def test_class_data_is_used_before_generating(monkeypatch, shared, tmp_path, capsys):
    classes = write_photo_zip(tmp_path / "cats.zip", names=("chelsea",), size=(80, 80))
    result = run(monkeypatch, shared, "class_data", class_data=classes)
    assert "generating" not in capsys.readouterr().out
    assert not same(weights(result.output), shared["unet"])
    run(monkeypatch, shared, "class_data_topped_up", class_data=classes, num_class_images=2)
    assert "generating 1 class images" in capsys.readouterr().out  # the user's one, plus one


def test_only_num_class_images_of_the_class_data_are_used(monkeypatch, shared, tmp_path, caplog):
    classes = write_photo_zip(
        tmp_path / "cats.zip", names=("chelsea", "coffee", "rocket"), size=(80, 80)
    )
    with caplog.at_level("INFO", logger="trainer.class_images"):
        run(monkeypatch, shared, "class_data_capped", class_data=classes, num_class_images=2)
    assert "using 2 class images from class_data" in caplog.text


def test_frozen_text_encoder_stays_the_base_one(monkeypatch, shared):
    result = run(monkeypatch, shared, "frozen_te", train_text_encoder=False)
    assert not same(weights(result.output), shared["unet"])
    base = weights_of_folder(shared["base"])
    assert same(weights(result.output, "text_encoder"), base)
    assert not same(shared["text_encoder"], base)


def weights_of_folder(folder):
    from safetensors.torch import load_file

    return load_file(folder / "text_encoder" / "model.safetensors")


def samples(output):
    from PIL import Image

    with zipfile.ZipFile(output) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("samples/"))
        return [Image.open(archive.open(n)).convert("RGB").tobytes() for n in names]


SAMPLE = dict(save_sample_prompt="a photo of sks cat", n_save_sample=1, save_infer_steps=2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("save_sample_negative_prompt", "blurry"),
        ("save_guidance_scale", 2.0),
        ("save_infer_steps", 3),
        ("save_sample_prompt", "a photo of sks cat in space"),
    ],
)
def test_sample_inputs_change_the_samples(monkeypatch, shared, name, value):
    reference = samples(run(monkeypatch, shared, "samples", **SAMPLE).output)
    changed = samples(run(monkeypatch, shared, "samples", **{**SAMPLE, name: value}).output)
    assert len(reference) == len(changed) == 1 and reference != changed


def test_n_save_sample_sets_the_number_of_samples(monkeypatch, shared):
    assert samples(run(monkeypatch, shared, "no_samples").output) == []
    assert len(samples(run(monkeypatch, shared, "n", **{**SAMPLE, "n_save_sample": 3}).output)) == 3


def test_sample_batch_size_batches_class_generation(monkeypatch, shared, tmp_path, capsys):
    train(
        monkeypatch,
        shared["base"],
        shared["photos"],
        tmp_path / "a",
        num_class_images=2,
        sample_batch_size=1,
    )
    assert capsys.readouterr().out.count("class images: ") == 2
    train(
        monkeypatch,
        shared["base"],
        shared["photos"],
        tmp_path / "b",
        num_class_images=2,
        sample_batch_size=2,
    )
    assert capsys.readouterr().out.count("class images: ") == 1


def test_generated_class_images_are_reused_by_the_next_run(monkeypatch, shared, capsys):
    run(monkeypatch, shared, "reuse", seed=11)
    assert "generating 1 class images" in capsys.readouterr().out
    run(monkeypatch, shared, "reuse", seed=12)  # another run, same prompt and base
    out = capsys.readouterr().out
    assert "reusing 1 cached class images" in out and "generating" not in out


def test_max_train_steps_and_epochs_set_the_step_count(monkeypatch, shared):
    assert run(monkeypatch, shared, "steps", max_train_steps=5).steps == 5
    # 4 photos, batch 1: one epoch is 4 steps
    assert run(monkeypatch, shared, "epochs", max_train_steps=0, num_train_epochs=2).steps == 8


def test_gradient_checkpointing_is_enabled_without_changing_the_math(monkeypatch, shared):
    from diffusers import UNet2DConditionModel

    calls = []
    original = UNet2DConditionModel.enable_gradient_checkpointing

    def spy(self, *args, **kwargs):
        calls.append(True)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "enable_gradient_checkpointing", spy)
    result = run(monkeypatch, shared, "gc", gradient_checkpointing=True)
    assert calls
    assert same(weights(result.output), shared["unet"])


def test_scale_lr_scales_the_learning_rate(monkeypatch, shared):
    plain = run(monkeypatch, shared, "accum", gradient_accumulation_steps=2)
    scaled = run(monkeypatch, shared, "scaled", gradient_accumulation_steps=2, scale_lr=True)
    with zipfile.ZipFile(scaled.output) as archive:
        assert json.loads(archive.read("args.json"))["learning_rate"] == 2 * FAST["learning_rate"]
    assert not same(weights(plain.output), weights(scaled.output))


def test_checkpointing_steps_saves_resumable_state(monkeypatch, shared, caplog):
    caplog.set_level(logging.INFO, logger="trainer.checkpoints")
    run(monkeypatch, shared, "ckpt", checkpointing_steps=1)
    saved = [r.getMessage() for r in caplog.records if "checkpoint saved" in r.getMessage()]
    assert saved == ["checkpoint saved at step 1", "checkpoint saved at step 2"]


@pytest.mark.parametrize("resume", [True, False])
def test_resume_decides_whether_a_checkpoint_is_used(monkeypatch, shared, resume):
    def crash_in_step_2(event):  # before step 2's checkpoint is written
        if event.step == 2:
            raise KeyboardInterrupt

    name = f"resume-{resume}"
    with pytest.raises(KeyboardInterrupt):
        run(monkeypatch, shared, name, checkpointing_steps=1, callbacks=[crash_in_step_2])
    result = run(monkeypatch, shared, name, checkpointing_steps=1, resume=resume)
    assert result.resumed_from == (1 if resume else 0)
    assert result.steps == 3


def test_fp16_on_a_cpu_is_refused_with_a_clear_error(monkeypatch, shared):
    with pytest.raises(UserError, match="mixed_precision='fp16' needs a CUDA GPU"):
        run(monkeypatch, shared, "fp16", mixed_precision="fp16")
