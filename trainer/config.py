"""The trainer's inputs as one typed, self-validating config.

Field names, types and defaults are replicate/dreambooth's (all 33, so existing DreamBooth API
payloads keep working; ../shared/reference/anchors.md §1.2) plus ours at the end. Every value is
checked here, before any photo is read or any weight is loaded, and an error names the input,
the value and what is allowed. The resolved config is saved beside the weights as `args.json`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path

from core.errors import UserError
from core.safetensors_file import read_header


class LRScheduler(str, Enum):
    LINEAR = "linear"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"
    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"


class MixedPrecision(str, Enum):
    AUTO = "auto"  # bf16 on GPUs that support it, else fp16 on GPU; fp32 on CPU
    NO = "no"
    FP16 = "fp16"
    BF16 = "bf16"


class ConfigError(UserError):
    pass


def _check(condition: bool, name: str, value: object, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")


@dataclass(frozen=True)
class TrainConfig:
    # replicate/dreambooth's inputs, same names, types and defaults
    instance_prompt: str
    class_prompt: str
    instance_data: Path
    class_data: Path | None = None
    num_class_images: int = 50
    save_sample_prompt: str | None = None
    save_sample_negative_prompt: str | None = None
    n_save_sample: int = 4
    save_guidance_scale: float = 7.5
    save_infer_steps: int = 50
    pad_tokens: bool = False
    with_prior_preservation: bool = True
    prior_loss_weight: float = 1.0
    seed: int = 1337
    resolution: int = 512
    center_crop: bool = False
    train_text_encoder: bool = True
    train_batch_size: int = 1
    sample_batch_size: int = 4
    num_train_epochs: int = 1
    max_train_steps: int = 2000
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    learning_rate: float = 1e-6
    scale_lr: bool = False
    lr_scheduler: LRScheduler = LRScheduler.CONSTANT
    lr_warmup_steps: int = 0
    use_8bit_adam: bool = False
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    # ours
    ckpt_base: Path | None = None
    offset_noise: float = 0.0
    snr_gamma: float = 0.0
    hflip: bool = False
    mixed_precision: MixedPrecision = MixedPrecision.AUTO
    checkpointing_steps: int = 500
    resume: bool = True

    def __post_init__(self) -> None:
        self._coerce()
        self._validate_prompts()
        self._validate_numbers()
        self._validate_files()

    def _coerce(self) -> None:
        for name, enum in (("lr_scheduler", LRScheduler), ("mixed_precision", MixedPrecision)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))
            except ValueError:
                allowed = ", ".join(m.value for m in enum)
                raise ConfigError(f"{name}={value!r} is not one of {allowed}") from None
        for name in ("instance_data", "class_data", "ckpt_base"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    def _validate_prompts(self) -> None:
        for name in ("instance_prompt", "class_prompt"):
            value = getattr(self, name)
            non_empty = isinstance(value, str) and value.strip() != ""
            _check(non_empty, name, value, "a non-empty prompt")
            _check(len(value) <= 1000, name, value[:40] + "…", "at most 1000 characters")

    def _validate_numbers(self) -> None:
        _check(64 <= self.resolution <= 2048, "resolution", self.resolution, "64 to 2048")
        _check(self.resolution % 8 == 0, "resolution", self.resolution, "a multiple of 8")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "greater than 0")
        for name in ("adam_beta1", "adam_beta2"):
            value = getattr(self, name)
            _check(0 <= value < 1, name, value, "0 <= value < 1")
        _check(self.adam_epsilon > 0, "adam_epsilon", self.adam_epsilon, "greater than 0")
        _check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, ">= 0 (0 = off)")
        _check(self.max_train_steps >= 0, "max_train_steps", self.max_train_steps, ">= 0")
        positive = (
            "train_batch_size",
            "sample_batch_size",
            "num_train_epochs",
            "gradient_accumulation_steps",
            "n_save_sample",
            "save_infer_steps",
        )
        for name in positive:
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        non_negative = (
            "num_class_images",
            "lr_warmup_steps",
            "checkpointing_steps",
            "prior_loss_weight",
            "offset_noise",
            "snr_gamma",
            "adam_weight_decay",
        )
        for name in non_negative:
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        _check(self.offset_noise <= 1, "offset_noise", self.offset_noise, "0 to 1 (0.1 is usual)")
        _check(0 <= self.seed < 2**32, "seed", self.seed, "0 to 4294967295")
        if self.with_prior_preservation and self.class_data is None:
            _check(
                self.num_class_images >= 1,
                "num_class_images",
                self.num_class_images,
                ">= 1 with prior preservation and no class_data",
            )

    def _validate_files(self) -> None:
        _check(
            self.instance_data.is_file(),
            "instance_data",
            str(self.instance_data),
            "an existing .zip or .tar file of photos",
        )
        if self.class_data is not None:
            _check(
                self.class_data.is_file(),
                "class_data",
                str(self.class_data),
                "an existing .zip or .tar file of photos",
            )
        if self.ckpt_base is not None:
            _check(
                self.ckpt_base.is_file(),
                "ckpt_base",
                str(self.ckpt_base),
                "an existing single-file .safetensors checkpoint",
            )
            read_header(self.ckpt_base, label="ckpt_base")

    # --- derived values -------------------------------------------------------------------

    def total_steps(self, examples_per_epoch: int, processes: int = 1) -> int:
        """Optimizer steps: max_train_steps, or num_train_epochs worth when it is 0."""
        if self.max_train_steps:
            return self.max_train_steps
        global_batch = self.train_batch_size * processes * self.gradient_accumulation_steps
        return self.num_train_epochs * math.ceil(examples_per_epoch / global_batch)

    def effective_learning_rate(self, processes: int = 1) -> float:
        if not self.scale_lr:
            return self.learning_rate
        return (
            self.learning_rate
            * self.gradient_accumulation_steps
            * self.train_batch_size
            * processes
        )

    def to_dict(self) -> dict:
        """Every input as resolved (paths by file name: they are temporary upload paths)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Enum):
                data[key] = value.value
            elif isinstance(value, Path):
                data[key] = value.name
        return data

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
