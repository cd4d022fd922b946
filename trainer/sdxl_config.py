"""The SDXL trainer's inputs: replicate/cog-sdxl's, with the same names, types and defaults
(../shared/reference/anchors.md §3.2), then the ones our SD1.5 trainer has where they apply.

Declared once here with `param(...)`; trainer/sdxl_predict.py is rendered from it
(trainer/sdxl_inputs.py). The attributes the shared loop and methods read (trainer/loop.py,
trainer/methods/) are properties with cog-sdxl's fixed values, so one loop serves both trainers.
`is_lora=true` is pivotal tuning (new tokens + LoRA); `false` is pivotal tuning with the whole
UNet (which cog-sdxl meant, but its optimizer never received the UNet's parameters).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from trainer.config import (
    STEPS,
    ConfigError,
    Inputs,
    LRScheduler,
    MethodName,
    MixedPrecision,
    _check,
    _enum_of,
    _number,
    param,
    required,
)


class ArchiveType(str, Enum):
    INFER = "infer"  # recognised by content (the only thing we do; kept for old payloads)
    ZIP = "zip"
    TAR = "tar"


NEVER = 999_999  # cog-sdxl's checkpointing_steps default: no checkpoint within any run


@dataclass(frozen=True)
class SDXLConfig(Inputs):
    input_images: Path = required(
        "A .zip or .tar (any compression) of photos; folders and any common image format. An "
        "optional captions.csv (image_file,caption) replaces the generated captions."
    )
    seed: int | None = param(None, "Random seed; empty for a random one.", 0, 4294967295)
    resolution: int = param(
        768, "Square training resolution in pixels (a multiple of 8).", 64, 2048
    )
    train_batch_size: int = param(4, "Photos per batch (per device).", 1, 64)
    num_train_epochs: int = param(4000, "Epochs to train for when max_train_steps is 0.", 1, 100000)
    max_train_steps: int = param(
        1000, "Total optimizer steps; takes precedence over num_train_epochs (0: epochs).", 0, STEPS
    )
    is_lora: bool = param(
        True, "true: pivotal tuning with LoRA. false: pivotal tuning with the whole UNet."
    )
    unet_learning_rate: float = param(
        1e-6, "Learning rate of the UNet when is_lora is false.", 0.0, 1.0
    )
    ti_lr: float = param(3e-4, "Learning rate of the new token embeddings.", 0.0, 1.0)
    lora_lr: float = param(1e-4, "Learning rate of the LoRA layers.", 0.0, 1.0)
    lora_rank: int = param(32, "Rank of the LoRA layers.", 1, 256)
    lr_scheduler: LRScheduler = param(LRScheduler.CONSTANT, "Learning-rate schedule.")
    lr_warmup_steps: int = param(100, "Warmup steps of the learning rate.", 0, STEPS)
    token_string: str = param(
        "TOK", "The word of the captions that becomes the new tokens <s0><s1>."
    )
    caption_prefix: str = param(
        "a photo of TOK, ",
        "Text before each generated caption; must contain token_string.",
    )
    mask_target_prompts: str | None = param(
        None, "Prompt for CLIPSeg masks of what matters (e.g. a dog); empty for no mask."
    )
    crop_based_on_salience: bool = param(
        True, "Crop around the mask's centre of mass instead of the photo's centre."
    )
    use_face_detection_instead: bool = param(
        False, "Mask faces found by a face detector instead of CLIPSeg."
    )
    clipseg_temperature: float = param(
        1.0, "How soft CLIPSeg masks are: higher is softer.", 0.01, 100.0
    )
    verbose: bool = param(True, "Log every preprocessing step.")
    checkpointing_steps: int = param(
        NEVER, "Save resumable state every N steps (0 or 999999: never).", 0, NEVER
    )
    input_images_filetype: ArchiveType = param(
        ArchiveType.INFER, "Ignored: archives are recognised by their content."
    )
    # ours, as the SD1.5 trainer has them
    max_grad_norm: float = param(
        1.0, "Clip gradients to this global norm; 0 disables clipping.", 0.0, 1000.0
    )
    mixed_precision: MixedPrecision = param(
        MixedPrecision.AUTO, "auto: bf16 on GPUs that support it, else fp16; fp32 on CPU."
    )
    gradient_checkpointing: bool = param(
        False, "Trade compute for memory: recompute activations in the backward pass."
    )
    use_8bit_adam: bool = param(False, "Use bitsandbytes' 8-bit AdamW: less optimizer memory.")
    snr_gamma: float = param(0.0, "Min-SNR loss weighting gamma (5 is usual; 0 = off).", 0.0, 100.0)
    offset_noise: float = param(0.0, "Offset-noise strength (0.1 is usual; 0 = off).", 0.0, 1.0)
    hflip: bool = param(False, "Randomly mirror photos horizontally.")
    resume: bool = param(True, "Resume from the last checkpoint of an identical earlier run.")
    save_sample_prompt: str | None = param(
        None, "If set, sample images of this prompt (TOK for the subject) go in samples/."
    )
    ti_fraction: float = param(
        0.5, "Fraction of the steps after which the token embeddings freeze.", 0.01, 1.0
    )
    train_text_encoder: bool = param(
        False, "Also give both text encoders LoRA layers (is_lora only)."
    )

    def __post_init__(self) -> None:
        self._coerce()
        self._validate_bounds()
        self._validate_words()
        for name in ("ti_lr", "lora_lr", "unet_learning_rate"):
            _check(getattr(self, name) > 0, name, getattr(self, name), "greater than 0")
        _check(self.resolution % 8 == 0, "resolution", self.resolution, "a multiple of 8")
        if self.train_text_encoder:
            _check(self.is_lora, "train_text_encoder", True, "only with is_lora=true")
        _check(self.input_images.is_file(), "input_images", str(self.input_images), "an archive")

    def _coerce(self) -> None:
        for spec in fields(self):
            enum = _enum_of(spec)
            value = getattr(self, spec.name)
            if enum is not None:
                try:
                    object.__setattr__(self, spec.name, enum(value))
                except ValueError:
                    allowed = ", ".join(m.value for m in enum)
                    raise ConfigError(f"{spec.name}={value!r} is not one of {allowed}") from None
        if not isinstance(self.input_images, Path):
            object.__setattr__(self, "input_images", Path(self.input_images))
        if self.seed is None:  # cog-sdxl: random; recorded in args.json
            object.__setattr__(self, "seed", random.SystemRandom().randrange(2**32))

    def _validate_bounds(self) -> None:
        for spec in fields(self):
            bounds, value = spec.metadata["input"], getattr(self, spec.name)
            if value is None or isinstance(value, (bool, str, Path, Enum)):
                continue
            low = -math.inf if bounds.ge is None else bounds.ge
            high = math.inf if bounds.le is None else bounds.le
            ok = isinstance(value, (int, float)) and low <= value <= high
            _check(ok, spec.name, value, f"{_number(low)} to {_number(high)}")

    def _validate_words(self) -> None:
        word = self.token_string.strip()
        _check(
            word.isalnum() and len(word) <= 40,
            "token_string",
            self.token_string,
            "one word of letters and digits",
        )
        _check(
            word.lower() in self.caption_prefix.lower(),
            "caption_prefix",
            self.caption_prefix,
            f"text containing token_string={word!r}",
        )
        _check(len(self.caption_prefix) <= 300, "caption_prefix", "…", "at most 300 characters")

    # --- what the shared loop and methods read --------------------------------------------

    @property
    def method(self) -> MethodName:
        return MethodName.PIVOTAL

    @property
    def learning_rate(self) -> float:
        return self.unet_learning_rate

    instance_prompt = property(lambda self: self.caption_prefix.strip().rstrip(",").strip())
    class_prompt = None
    initializer_token = None  # cog-sdxl: random at the embeddings' scale
    num_new_tokens = 2  # cog-sdxl's token map TOK:2 (its predictor expects exactly two)
    lora_alpha = None
    gradient_accumulation_steps = 1
    prior_loss_weight = 1.0
    adam_beta1, adam_beta2, adam_weight_decay, adam_epsilon = 0.9, 0.999, 1e-4, 1e-8
    center_crop = True  # the crop is chosen by preprocessing (salience or centre)
    pad_tokens = True
    # samples (save_sample_prompt): cog-sdxl's fixed settings
    save_sample_negative_prompt = None
    n_save_sample = 1
    save_guidance_scale = 7.5
    save_infer_steps = 30

    def new_token_word(self) -> str:
        return self.token_string.strip()

    def total_steps(self, examples_per_epoch: int, processes: int = 1) -> int:
        if self.max_train_steps:
            return self.max_train_steps
        global_batch = self.train_batch_size * processes
        return self.num_train_epochs * math.ceil(examples_per_epoch / global_batch)

    def lr_scale(self, processes: int = 1) -> float:
        return 1.0
