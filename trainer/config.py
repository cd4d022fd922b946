"""The trainer's inputs as one typed, self-validating config: the one place they are declared.

Field names, types and defaults are replicate/dreambooth's (all 33, so existing DreamBooth API
payloads keep working; ../shared/reference/anchors.md §1.2), then ours. Each field carries its
description, bounds and choices (`param`), from which trainer/predict.py is rendered
(trainer/inputs.py) and against which every value is checked here, before any photo is read or
any weight is loaded; an error names the input, the value and what is allowed. The resolved
config is saved beside the weights as `args.json`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path

from core.errors import UserError
from core.manifest import identifier_token
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


class MethodName(str, Enum):
    FULL = "full"  # DreamBooth: the whole UNet (and text encoder)
    LORA = "lora"
    TEXTUAL_INVERSION = "textual_inversion"
    PIVOTAL = "pivotal"  # new tokens and LoRA together


class ConfigError(UserError):
    pass


@dataclass(frozen=True)
class Bounds:
    """What the Cog schema says about one input (and what is checked here)."""

    description: str
    ge: float | None = None
    le: float | None = None


def param(default, description: str, ge: float | None = None, le: float | None = None):
    return field(default=default, metadata={"input": Bounds(description, ge, le)})


def required(description: str):
    return field(metadata={"input": Bounds(description)})


def _check(condition: bool, name: str, value: object, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")


ARCHIVE = "a .zip or .tar (any compression) of photos"
STEPS = 100_000


class Inputs:
    """What every trainer's config (TrainConfig, SDXLConfig) says of its own fields."""

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


@dataclass(frozen=True)
class TrainConfig(Inputs):
    # replicate/dreambooth's inputs, same names, types and defaults
    instance_prompt: str = required(
        "The prompt with the identifier of your subject, in the form 'a [identifier] [class "
        "noun]', where the identifier is a rare token such as 'sks' or 'zwx', e.g. 'a photo of sks"
        " dog'."
    )
    class_prompt: str = required(
        "The prompt for the subject's class without the identifier, e.g. 'a photo of a dog'. Used "
        "for prior preservation."
    )
    instance_data: Path = required(
        "A .zip or .tar (any compression) of photos of your subject; folders, any common image "
        "format. Optional captions: captions.csv (image_file,caption) or name.txt beside name.jpg."
    )
    class_data: Path | None = param(
        None,
        "Optional .zip or .tar of class images used first for prior preservation; missing ones are"
        " generated from class_prompt.",
    )
    num_class_images: int = param(
        50,
        "Minimal class images for prior preservation; any not supplied in class_data are generated"
        " with class_prompt.",
        0,
        1000,
    )
    save_sample_prompt: str | None = param(
        None,
        "If set, sample images generated with this prompt are saved in samples/ of the output.",
    )
    save_sample_negative_prompt: str | None = param(None, "Negative prompt for the sample images.")
    n_save_sample: int = param(4, "Number of sample images to save.", 1, 16)
    save_guidance_scale: float = param(
        7.5, "Classifier-free guidance scale for the sample images.", 0.0, 50.0
    )
    save_infer_steps: int = param(50, "Denoising steps for the sample images.", 1, 500)
    pad_tokens: bool = param(
        False,
        "Pad every caption to the tokenizer's 77 tokens instead of the longest caption in the "
        "batch.",
    )
    with_prior_preservation: bool = param(
        True,
        "Add the prior-preservation loss on class images, which keeps the model able to draw other"
        " members of the class.",
    )
    prior_loss_weight: float = param(1.0, "Weight of the prior-preservation loss.", 0.0, 10.0)
    seed: int = param(
        1337,
        "Seed for reproducible training: the same seed and inputs give the same weights on CPU.",
        0,
        4294967295,
    )
    resolution: int = param(
        512,
        "Training resolution in pixels (a multiple of 8); photos are resized and cropped to it.",
        64,
        2048,
    )
    center_crop: bool = param(False, "Crop photos at the centre; otherwise at a random position.")
    train_text_encoder: bool = param(
        True,
        "Train the text encoder as well as the UNet (full fine-tune), or give it LoRA layers too "
        "(lora, pivotal).",
    )
    train_batch_size: int = param(1, "Photos per batch (per device).", 1, 64)
    sample_batch_size: int = param(4, "Batch size when generating class images.", 1, 64)
    num_train_epochs: int = param(1, "Epochs to train for when max_train_steps is 0.", 1, 10000)
    max_train_steps: int = param(
        2000,
        "Total optimizer steps. Overrides num_train_epochs; 0 trains for num_train_epochs instead.",
        0,
        STEPS,
    )
    gradient_accumulation_steps: int = param(
        1, "Batches to accumulate before each optimizer step.", 1, 64
    )
    gradient_checkpointing: bool = param(
        False, "Trade compute for memory: recompute activations in the backward pass."
    )
    learning_rate: float = param(
        1e-6,
        "Learning rate of the full fine-tune (method full), after any warmup; must be above 0.",
        0.0,
        1.0,
    )
    scale_lr: bool = param(
        False, "Scale the learning rates by accumulation steps x batch size x devices."
    )
    lr_scheduler: LRScheduler = param(LRScheduler.CONSTANT, "Learning-rate schedule.")
    lr_warmup_steps: int = param(
        0,
        "Steps over which the learning rate rises linearly from 0 (with 'constant' this means "
        "constant after warmup).",
        0,
        STEPS,
    )
    use_8bit_adam: bool = param(False, "Use bitsandbytes' 8-bit AdamW: less optimizer memory.")
    adam_beta1: float = param(0.9, "Adam beta1.", 0.0, 0.9999)
    adam_beta2: float = param(0.999, "Adam beta2.", 0.0, 0.99999)
    adam_weight_decay: float = param(1e-2, "Weight decay.", 0.0, 1.0)
    adam_epsilon: float = param(1e-8, "Adam epsilon (above 0).", 0.0, 1.0)
    max_grad_norm: float = param(
        1.0, "Clip gradients to this global norm; 0 disables clipping.", 0.0, 1000.0
    )
    # ours
    ckpt_base: Path | None = param(
        None,
        "Optional single-file .safetensors SD1.5 checkpoint to start from instead of the default "
        "base. Pickle checkpoints (.ckpt, .bin, .pt) are refused.",
    )
    offset_noise: float = param(
        0.0,
        "Offset-noise strength (0.1 is usual; 0 = off): helps learn very dark or bright images.",
        0.0,
        1.0,
    )
    snr_gamma: float = param(
        0.0,
        "Min-SNR loss weighting gamma (5.0 is usual; 0 = off): faster, steadier convergence.",
        0.0,
        100.0,
    )
    hflip: bool = param(
        False,
        "Randomly mirror photos horizontally (not for asymmetric subjects such as text or faces "
        "with a parting).",
    )
    mixed_precision: MixedPrecision = param(
        MixedPrecision.AUTO,
        "auto: bf16 on GPUs that support it, else fp16 on GPU; fp32 on CPU. fp16 needs a GPU.",
    )
    checkpointing_steps: int = param(
        500,
        "Save resumable state every N steps (0 = never). A run started again with the same inputs "
        "resumes from the last one.",
        0,
        STEPS,
    )
    resume: bool = param(
        True,
        "Resume from the last checkpoint of an identical earlier run in the same work directory.",
    )
    method: MethodName = param(
        MethodName.FULL,
        "full: DreamBooth, the whole model (output: a complete pipeline, about 2 GB). lora: LoRA "
        "layers on the attention (a few MB). textual_inversion: new tokens only (KB). pivotal: new"
        " tokens and LoRA.",
    )
    lora_rank: int = param(32, "Rank of the LoRA layers (lora, pivotal).", 1, 256)
    lora_alpha: float | None = param(
        None, "LoRA alpha (lora, pivotal); empty for the rank, i.e. a scale of 1.", 0.01, 1024.0
    )
    lora_lr: float = param(1e-4, "Learning rate of the LoRA layers (lora, pivotal).", 0.0, 1.0)
    ti_lr: float = param(
        3e-4, "Learning rate of the new token embeddings (textual_inversion, pivotal).", 0.0, 1.0
    )
    num_new_tokens: int = param(
        2,
        "New tokens that the token_string stands for (textual_inversion, pivotal).",
        1,
        16,
    )
    token_string: str | None = param(
        None,
        "The word of instance_prompt that becomes the new tokens (textual_inversion, pivotal); "
        "empty for the identifier found in instance_prompt and not in class_prompt, e.g. sks.",
    )
    initializer_token: str | None = param(
        None,
        "A word whose embedding starts the new tokens; empty for the class word of class_prompt "
        "(e.g. dog), else random.",
    )
    ti_fraction: float = param(
        0.5,
        "pivotal: the fraction of steps after which the embeddings freeze and only LoRA trains "
        "(cog-sdxl pivots halfway).",
        0.0,
        1.0,
    )

    def __post_init__(self) -> None:
        self._coerce()
        self._validate_bounds()
        self._validate_prompts()
        self._validate_numbers()
        self._validate_method()
        self._validate_files()

    def _coerce(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            enum = _enum_of(spec)
            if enum is not None:
                try:
                    object.__setattr__(self, spec.name, enum(value))
                except ValueError:
                    allowed = ", ".join(m.value for m in enum)
                    raise ConfigError(f"{spec.name}={value!r} is not one of {allowed}") from None
        for name in ("instance_data", "class_data", "ckpt_base"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    def _validate_bounds(self) -> None:
        """The ge/le of every input, as the Cog schema states them."""
        for spec in fields(self):
            bounds, value = spec.metadata.get("input"), getattr(self, spec.name)
            if bounds is None or value is None or isinstance(value, (bool, str, Path, Enum)):
                continue
            low = -math.inf if bounds.ge is None else bounds.ge
            high = math.inf if bounds.le is None else bounds.le
            ok = isinstance(value, (int, float)) and low <= value <= high
            _check(ok, spec.name, value, f"{_number(low)} to {_number(high)}")

    def _validate_prompts(self) -> None:
        for name in ("instance_prompt", "class_prompt"):
            value = getattr(self, name)
            non_empty = isinstance(value, str) and value.strip() != ""
            _check(non_empty, name, value, "a non-empty prompt")
            _check(len(value) <= 1000, name, value[:40] + "…", "at most 1000 characters")

    def _validate_numbers(self) -> None:
        _check(self.resolution % 8 == 0, "resolution", self.resolution, "a multiple of 8")
        for name in ("learning_rate", "adam_epsilon", "lora_lr", "ti_lr"):
            _check(getattr(self, name) > 0, name, getattr(self, name), "greater than 0")
        for name in ("adam_beta1", "adam_beta2"):
            _check(getattr(self, name) < 1, name, getattr(self, name), "0 <= value < 1")
        if self.with_prior_preservation and self.class_data is None:
            _check(
                self.num_class_images >= 1,
                "num_class_images",
                self.num_class_images,
                ">= 1 with prior preservation and no class_data",
            )

    def _validate_method(self) -> None:
        if self.method not in (MethodName.TEXTUAL_INVERSION, MethodName.PIVOTAL):
            return
        if self.method is MethodName.PIVOTAL:
            _check(self.ti_fraction > 0, "ti_fraction", self.ti_fraction, "above 0 (0 is lora)")
        word = self.new_token_word()
        words = self.instance_prompt.lower().replace(",", " ").split()
        if self.token_string is None and word is None:
            raise ConfigError(
                f"token_string: no identifier found in instance_prompt={self.instance_prompt!r} "
                f"(a word that class_prompt={self.class_prompt!r} lacks); set token_string to "
                "the word that names your subject"
            )
        _check(
            word.lower() in words,
            "token_string",
            word,
            f"a word of instance_prompt={self.instance_prompt!r}",
        )
        if self.initializer_token is not None:
            _check(
                len(self.initializer_token.split()) == 1,
                "initializer_token",
                self.initializer_token,
                "one word",
            )

    def _validate_files(self) -> None:
        _check(self.instance_data.is_file(), "instance_data", str(self.instance_data), ARCHIVE)
        if self.class_data is not None:
            _check(self.class_data.is_file(), "class_data", str(self.class_data), ARCHIVE)
        if self.ckpt_base is not None:
            _check(
                self.ckpt_base.is_file(),
                "ckpt_base",
                str(self.ckpt_base),
                "an existing single-file .safetensors checkpoint",
            )
            read_header(self.ckpt_base, label="ckpt_base")

    # --- derived values -------------------------------------------------------------------

    def new_token_word(self) -> str | None:
        """The word that becomes new tokens: token_string, else the detected identifier."""
        return self.token_string or identifier_token(self.instance_prompt, self.class_prompt)

    def total_steps(self, examples_per_epoch: int, processes: int = 1) -> int:
        """Optimizer steps: max_train_steps, or num_train_epochs worth when it is 0."""
        if self.max_train_steps:
            return self.max_train_steps
        global_batch = self.train_batch_size * processes * self.gradient_accumulation_steps
        return self.num_train_epochs * math.ceil(examples_per_epoch / global_batch)

    def lr_scale(self, processes: int = 1) -> float:
        """What scale_lr multiplies every learning rate by (1 without it)."""
        if not self.scale_lr:
            return 1.0
        return self.gradient_accumulation_steps * self.train_batch_size * processes

    def effective_learning_rate(self, processes: int = 1) -> float:
        return self.learning_rate * self.lr_scale(processes)


def _enum_of(spec) -> type[Enum] | None:
    default = spec.default
    return type(default) if isinstance(default, Enum) else None


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
