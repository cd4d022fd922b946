from pathlib import Path

from buildkit import schema
from buildkit.targets import REPO_ROOT, trainer_target
from trainer import predict
from trainer.config import LRScheduler, MixedPrecision, TrainConfig

REPLICATE_INPUTS = [  # replicate/dreambooth's 33, in its order (anchors.md §1.2)
    "instance_prompt",
    "class_prompt",
    "instance_data",
    "class_data",
    "num_class_images",
    "save_sample_prompt",
    "save_sample_negative_prompt",
    "n_save_sample",
    "save_guidance_scale",
    "save_infer_steps",
    "pad_tokens",
    "with_prior_preservation",
    "prior_loss_weight",
    "seed",
    "resolution",
    "center_crop",
    "train_text_encoder",
    "train_batch_size",
    "sample_batch_size",
    "num_train_epochs",
    "max_train_steps",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
    "learning_rate",
    "scale_lr",
    "lr_scheduler",
    "lr_warmup_steps",
    "use_8bit_adam",
    "adam_beta1",
    "adam_beta2",
    "adam_weight_decay",
    "adam_epsilon",
    "max_grad_norm",
]


def trainer_schema() -> dict:
    target = trainer_target()
    return schema.generate(REPO_ROOT, target.run, target.train)


def test_trainer_keeps_every_replicate_input_in_order_then_ours():
    properties = trainer_schema()["components"]["schemas"]["Input"]["properties"]
    names = sorted(properties, key=lambda n: properties[n]["x-order"])
    assert names[:33] == REPLICATE_INPUTS
    assert names[33:] == [
        "ckpt_base",
        "offset_noise",
        "snr_gamma",
        "hflip",
        "mixed_precision",
        "checkpointing_steps",
        "resume",
        "method",
        "lora_rank",
        "lora_alpha",
        "lora_lr",
        "ti_lr",
        "num_new_tokens",
        "token_string",
        "initializer_token",
        "ti_fraction",
    ]
    assert names == TrainConfig.field_names()


def test_only_the_three_replicate_required_inputs_are_required():
    for key in ("Input", "TrainingInput"):
        required = trainer_schema()["components"]["schemas"][key]["required"]
        assert required == ["instance_prompt", "class_prompt", "instance_data"]


def test_every_input_is_described_and_numbers_are_bounded():
    properties = trainer_schema()["components"]["schemas"]["Input"]["properties"]
    for name, prop in properties.items():
        assert prop.get("description"), name
        if prop.get("type") in ("integer", "number"):
            assert "minimum" in prop and "maximum" in prop, name


def test_optional_files_are_nullable_uris():
    properties = trainer_schema()["components"]["schemas"]["Input"]["properties"]
    for name in ("class_data", "ckpt_base"):
        assert properties[name]["format"] == "uri" and properties[name]["nullable"] is True


def test_choices_become_enum_components_from_the_config_enums():
    schemas = trainer_schema()["components"]["schemas"]
    assert schemas["lr_scheduler"]["enum"] == [m.value for m in LRScheduler]
    assert schemas["mixed_precision"]["enum"] == [m.value for m in MixedPrecision]
    assert [m.value for m in LRScheduler] == predict.LR_SCHEDULERS
    assert [m.value for m in MixedPrecision] == predict.PRECISIONS


def test_prediction_returns_a_file_and_training_returns_weights():
    schemas = trainer_schema()["components"]["schemas"]
    assert schemas["Output"]["format"] == "uri"
    assert list(schemas["TrainingOutput"]["properties"]) == ["weights"]
    assert set(trainer_schema()["paths"]) >= {"/predictions", "/trainings"}


def test_root_cog_yaml_is_the_rendered_trainer_target():
    assert Path(REPO_ROOT / "cog.yaml").read_text() == trainer_target().cog_yaml()
