from pathlib import Path

import pytest

from core.errors import UserError
from trainer.config import ConfigError, LRScheduler, MixedPrecision, TrainConfig


def make(tmp_path: Path, **overrides) -> TrainConfig:
    data = tmp_path / "photos.zip"
    data.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    values = dict(
        instance_prompt="a photo of sks dog", class_prompt="a photo of a dog", instance_data=data
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_defaults_are_replicate_dreambooths(tmp_path):
    cfg = make(tmp_path)
    expected = dict(
        num_class_images=50,
        n_save_sample=4,
        save_guidance_scale=7.5,
        save_infer_steps=50,
        pad_tokens=False,
        with_prior_preservation=True,
        prior_loss_weight=1.0,
        seed=1337,
        resolution=512,
        center_crop=False,
        train_text_encoder=True,
        train_batch_size=1,
        sample_batch_size=4,
        num_train_epochs=1,
        max_train_steps=2000,
        gradient_accumulation_steps=1,
        gradient_checkpointing=False,
        learning_rate=1e-6,
        scale_lr=False,
        lr_scheduler=LRScheduler.CONSTANT,
        lr_warmup_steps=0,
        use_8bit_adam=False,
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_weight_decay=1e-2,
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
    )
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_choices_are_coerced_to_enums(tmp_path):
    cfg = make(tmp_path, lr_scheduler="cosine", mixed_precision="bf16")
    assert cfg.lr_scheduler is LRScheduler.COSINE
    assert cfg.mixed_precision is MixedPrecision.BF16


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("lr_scheduler", "warp", "lr_scheduler='warp' is not one of linear"),
        ("mixed_precision", "fp8", "mixed_precision='fp8' is not one of auto"),
        ("resolution", 500, "a multiple of 8"),
        ("resolution", 32, "64 to 2048"),
        ("learning_rate", 0.0, "learning_rate=0.0"),
        ("instance_prompt", "   ", "instance_prompt"),
        ("adam_beta1", 1.0, "adam_beta1=1.0"),
        ("offset_noise", 2.0, "offset_noise=2.0"),
        ("train_batch_size", 0, "train_batch_size=0"),
        ("seed", -1, "seed=-1"),
        ("num_class_images", 0, "num_class_images=0"),
    ],
)
def test_invalid_values_name_the_input_and_what_is_allowed(tmp_path, field, value, fragment):
    with pytest.raises(ConfigError, match=None) as error:
        make(tmp_path, **{field: value})
    assert fragment in str(error.value)
    assert isinstance(error.value, UserError)


def test_missing_instance_data_is_named(tmp_path):
    with pytest.raises(ConfigError, match="instance_data"):
        make(tmp_path, instance_data=tmp_path / "nope.zip")


def test_pickle_ckpt_base_is_refused_before_anything_loads(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04\x95" + b"\0" * 64)  # a pickle's opening bytes
    with pytest.raises(UserError, match=r"ckpt_base: model.ckpt is a pickle checkpoint"):
        make(tmp_path, ckpt_base=ckpt)


def test_epochs_decide_the_steps_only_when_max_train_steps_is_zero(tmp_path):
    assert make(tmp_path, max_train_steps=7, num_train_epochs=9).total_steps(10) == 7
    cfg = make(tmp_path, max_train_steps=0, num_train_epochs=3, train_batch_size=4)
    assert cfg.total_steps(10) == 3 * 3  # ceil(10 / 4) batches per epoch


def test_scale_lr_multiplies_by_the_global_batch(tmp_path):
    cfg = make(
        tmp_path,
        scale_lr=True,
        learning_rate=1e-6,
        train_batch_size=2,
        gradient_accumulation_steps=3,
    )
    assert cfg.effective_learning_rate(processes=2) == pytest.approx(12e-6)
    assert make(tmp_path, learning_rate=1e-6).effective_learning_rate(2) == 1e-6


def test_args_record_every_input_with_paths_by_name(tmp_path):
    args = make(tmp_path, lr_scheduler="linear").to_dict()
    assert set(args) == set(TrainConfig.field_names())
    assert args["instance_data"] == "photos.zip"
    assert args["lr_scheduler"] == "linear"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (dict(method="dora"), "method='dora' is not one of full, lora, textual_inversion, pivotal"),
        (dict(lora_rank=0), "lora_rank=0 is not allowed: 1 to 256"),
        (dict(lora_alpha=0.0), "lora_alpha=0.0 is not allowed"),
        (dict(lora_lr=0.0), "lora_lr=0.0 is not allowed: greater than 0"),
        (dict(ti_lr=2.0), "ti_lr=2.0 is not allowed: 0 to 1"),
        (dict(num_new_tokens=17), "num_new_tokens=17 is not allowed: 1 to 16"),
        (dict(method="pivotal", ti_fraction=0.0), "ti_fraction=0.0 is not allowed: above 0"),
        (
            dict(method="textual_inversion", token_string="zwx"),
            "token_string='zwx' is not allowed: a word of instance_prompt='a photo of sks dog'",
        ),
        (
            dict(method="textual_inversion", class_prompt="a photo of sks dog"),
            "token_string: no identifier found in instance_prompt",
        ),
        (
            dict(method="pivotal", initializer_token="big dog"),
            "initializer_token='big dog' is not allowed: one word",
        ),
    ],
)
def test_method_inputs_are_checked_on_construction_naming_the_field(tmp_path, overrides, fragment):
    with pytest.raises(ConfigError) as error:
        make(tmp_path, **overrides)
    assert fragment in str(error.value)


def test_the_new_token_word_defaults_to_the_detected_identifier(tmp_path):
    assert make(tmp_path, method="textual_inversion").new_token_word() == "sks"
    named = make(tmp_path, method="pivotal", token_string="SKS")
    assert named.new_token_word() == "SKS"


def test_every_method_name_has_a_registered_strategy():
    from trainer.config import MethodName
    from trainer.methods import METHODS

    assert set(METHODS) == {name.value for name in MethodName}
