"""Cog adapter for the trainer: declare inputs, build the typed config, train, return.

Two entry points over the same inputs and the same core (cog.yaml):
- `run:`   `Predictor.run` returns `output.zip` — how the DreamBooth API runs trainers;
- `train:` `train` returns `TrainingOutput(weights=output.zip)` — Cog's training API.

Every input is declared once, in `Inputs`. Both signatures refer to it, in this file, because
`cog build` reads them statically and resolves such references only within the same file;
`choices` are literals for the same reason (tests/trainer/test_predict_adapter.py pins them to
the enums in trainer/config.py).
"""

from __future__ import annotations

import logging

from cog import BaseModel, BaseRunner, Input, Path, current_scope

LR_SCHEDULERS = [
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
]
PRECISIONS = ["auto", "no", "fp16", "bf16"]
FILE_INPUTS = ("instance_data", "class_data", "ckpt_base")


class Inputs:
    instance_prompt = Input(
        description="The prompt with the identifier of your subject, in the form 'a [identifier] [class noun]', where the identifier is a rare token such as 'sks' or 'zwx', e.g. 'a photo of sks dog'."
    )
    class_prompt = Input(
        description="The prompt for the subject's class without the identifier, e.g. 'a photo of a dog'. Used for prior preservation."
    )
    instance_data = Input(
        description="A .zip or .tar (any compression) of photos of your subject; folders, any common image format. Optional captions: captions.csv (image_file,caption) or name.txt beside name.jpg."
    )
    class_data = Input(
        default=None,
        description="Optional .zip or .tar of class images used first for prior preservation; missing ones are generated from class_prompt.",
    )
    num_class_images = Input(
        default=50,
        ge=0,
        le=1000,
        description="Minimal class images for prior preservation; any not supplied in class_data are generated with class_prompt.",
    )
    save_sample_prompt = Input(
        default=None,
        description="If set, sample images generated with this prompt are saved in samples/ of the output.",
    )
    save_sample_negative_prompt = Input(
        default=None, description="Negative prompt for the sample images."
    )
    n_save_sample = Input(default=4, ge=1, le=16, description="Number of sample images to save.")
    save_guidance_scale = Input(
        default=7.5,
        ge=0.0,
        le=50.0,
        description="Classifier-free guidance scale for the sample images.",
    )
    save_infer_steps = Input(
        default=50, ge=1, le=500, description="Denoising steps for the sample images."
    )
    pad_tokens = Input(
        default=False,
        description="Pad every caption to the tokenizer's 77 tokens instead of the longest caption in the batch.",
    )
    with_prior_preservation = Input(
        default=True,
        description="Add the prior-preservation loss on class images, which keeps the model able to draw other members of the class.",
    )
    prior_loss_weight = Input(
        default=1.0, ge=0.0, le=10.0, description="Weight of the prior-preservation loss."
    )
    seed = Input(
        default=1337,
        ge=0,
        le=4294967295,
        description="Seed for reproducible training: the same seed and inputs give the same weights on CPU.",
    )
    resolution = Input(
        default=512,
        ge=64,
        le=2048,
        description="Training resolution in pixels (a multiple of 8); photos are resized and cropped to it.",
    )
    center_crop = Input(
        default=False, description="Crop photos at the centre; otherwise at a random position."
    )
    train_text_encoder = Input(
        default=True, description="Train the text encoder as well as the UNet."
    )
    train_batch_size = Input(default=1, ge=1, le=64, description="Photos per batch (per device).")
    sample_batch_size = Input(
        default=4, ge=1, le=64, description="Batch size when generating class images."
    )
    num_train_epochs = Input(
        default=1, ge=1, le=10000, description="Epochs to train for when max_train_steps is 0."
    )
    max_train_steps = Input(
        default=2000,
        ge=0,
        le=100000,
        description="Total optimizer steps. Overrides num_train_epochs; 0 trains for num_train_epochs instead.",
    )
    gradient_accumulation_steps = Input(
        default=1, ge=1, le=64, description="Batches to accumulate before each optimizer step."
    )
    gradient_checkpointing = Input(
        default=False,
        description="Trade compute for memory: recompute activations in the backward pass.",
    )
    learning_rate = Input(
        default=1e-6,
        ge=0.0,
        le=1.0,
        description="Initial learning rate (after any warmup); must be above 0.",
    )
    scale_lr = Input(
        default=False,
        description="Scale the learning rate by accumulation steps x batch size x devices.",
    )
    lr_scheduler = Input(
        default="constant", choices=LR_SCHEDULERS, description="Learning-rate schedule."
    )
    lr_warmup_steps = Input(
        default=0,
        ge=0,
        le=100000,
        description="Steps over which the learning rate rises linearly from 0 (with 'constant' this means constant after warmup).",
    )
    use_8bit_adam = Input(
        default=False, description="Use bitsandbytes' 8-bit AdamW: less optimizer memory."
    )
    adam_beta1 = Input(default=0.9, ge=0.0, le=0.9999, description="Adam beta1.")
    adam_beta2 = Input(default=0.999, ge=0.0, le=0.99999, description="Adam beta2.")
    adam_weight_decay = Input(default=1e-2, ge=0.0, le=1.0, description="Weight decay.")
    adam_epsilon = Input(default=1e-8, ge=0.0, le=1.0, description="Adam epsilon (above 0).")
    max_grad_norm = Input(
        default=1.0,
        ge=0.0,
        le=1000.0,
        description="Clip gradients to this global norm; 0 disables clipping.",
    )
    ckpt_base = Input(
        default=None,
        description="Optional single-file .safetensors SD1.5 checkpoint to start from instead of the default base. Pickle checkpoints (.ckpt, .bin, .pt) are refused.",
    )
    offset_noise = Input(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Offset-noise strength (0.1 is usual; 0 = off): helps learn very dark or bright images.",
    )
    snr_gamma = Input(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="Min-SNR loss weighting gamma (5.0 is usual; 0 = off): faster, steadier convergence.",
    )
    hflip = Input(
        default=False,
        description="Randomly mirror photos horizontally (not for asymmetric subjects such as text or faces with a parting).",
    )
    mixed_precision = Input(
        default="auto",
        choices=PRECISIONS,
        description="auto: bf16 on GPUs that support it, else fp16 on GPU; fp32 on CPU. fp16 needs a GPU.",
    )
    checkpointing_steps = Input(
        default=500,
        ge=0,
        le=100000,
        description="Save resumable state every N steps (0 = never). A run started again with the same inputs resumes from the last one.",
    )
    resume = Input(
        default=True,
        description="Resume from the last checkpoint of an identical earlier run in the same work directory.",
    )


def _train(inputs: dict):
    from core.errors import with_cause
    from core.logs import LogTail
    from core.uploads import require_upload
    from trainer.config import TrainConfig  # heavy imports stay out of module import
    from trainer.job import train

    for name in FILE_INPUTS:
        require_upload(name, inputs[name])
    with LogTail() as tail:
        try:
            result = train(TrainConfig(**inputs))
        except Exception as error:
            raise with_cause(error, tail.text()) from error
    scope = current_scope()
    scope.record_metric("steps", result.steps)
    scope.record_metric("resumed_from_step", result.resumed_from)
    scope.record_metric("final_loss", result.summary["final_loss"])
    scope.record_metric("train_seconds", result.summary["seconds"])
    return Path(result.output)


class Predictor(BaseRunner):
    def setup(self) -> None:
        from core import logs
        from core.errors import WeightsMissingError

        logs.configure()
        from trainer.base_model import base_model_dir, describe_base

        try:
            describe_base(base_model_dir())
        except WeightsMissingError as error:
            logging.warning("%s (training requests will fail until it is there)", error)

    def run(
        self,
        instance_prompt: str = Inputs.instance_prompt,
        class_prompt: str = Inputs.class_prompt,
        instance_data: Path = Inputs.instance_data,
        class_data: Path | None = Inputs.class_data,
        num_class_images: int = Inputs.num_class_images,
        save_sample_prompt: str | None = Inputs.save_sample_prompt,
        save_sample_negative_prompt: str | None = Inputs.save_sample_negative_prompt,
        n_save_sample: int = Inputs.n_save_sample,
        save_guidance_scale: float = Inputs.save_guidance_scale,
        save_infer_steps: int = Inputs.save_infer_steps,
        pad_tokens: bool = Inputs.pad_tokens,
        with_prior_preservation: bool = Inputs.with_prior_preservation,
        prior_loss_weight: float = Inputs.prior_loss_weight,
        seed: int = Inputs.seed,
        resolution: int = Inputs.resolution,
        center_crop: bool = Inputs.center_crop,
        train_text_encoder: bool = Inputs.train_text_encoder,
        train_batch_size: int = Inputs.train_batch_size,
        sample_batch_size: int = Inputs.sample_batch_size,
        num_train_epochs: int = Inputs.num_train_epochs,
        max_train_steps: int = Inputs.max_train_steps,
        gradient_accumulation_steps: int = Inputs.gradient_accumulation_steps,
        gradient_checkpointing: bool = Inputs.gradient_checkpointing,
        learning_rate: float = Inputs.learning_rate,
        scale_lr: bool = Inputs.scale_lr,
        lr_scheduler: str = Inputs.lr_scheduler,
        lr_warmup_steps: int = Inputs.lr_warmup_steps,
        use_8bit_adam: bool = Inputs.use_8bit_adam,
        adam_beta1: float = Inputs.adam_beta1,
        adam_beta2: float = Inputs.adam_beta2,
        adam_weight_decay: float = Inputs.adam_weight_decay,
        adam_epsilon: float = Inputs.adam_epsilon,
        max_grad_norm: float = Inputs.max_grad_norm,
        ckpt_base: Path | None = Inputs.ckpt_base,
        offset_noise: float = Inputs.offset_noise,
        snr_gamma: float = Inputs.snr_gamma,
        hflip: bool = Inputs.hflip,
        mixed_precision: str = Inputs.mixed_precision,
        checkpointing_steps: int = Inputs.checkpointing_steps,
        resume: bool = Inputs.resume,
    ) -> Path:
        inputs = dict(locals())
        del inputs["self"]
        return _train(inputs)


class TrainingOutput(BaseModel):
    weights: Path


def train(
    instance_prompt: str = Inputs.instance_prompt,
    class_prompt: str = Inputs.class_prompt,
    instance_data: Path = Inputs.instance_data,
    class_data: Path | None = Inputs.class_data,
    num_class_images: int = Inputs.num_class_images,
    save_sample_prompt: str | None = Inputs.save_sample_prompt,
    save_sample_negative_prompt: str | None = Inputs.save_sample_negative_prompt,
    n_save_sample: int = Inputs.n_save_sample,
    save_guidance_scale: float = Inputs.save_guidance_scale,
    save_infer_steps: int = Inputs.save_infer_steps,
    pad_tokens: bool = Inputs.pad_tokens,
    with_prior_preservation: bool = Inputs.with_prior_preservation,
    prior_loss_weight: float = Inputs.prior_loss_weight,
    seed: int = Inputs.seed,
    resolution: int = Inputs.resolution,
    center_crop: bool = Inputs.center_crop,
    train_text_encoder: bool = Inputs.train_text_encoder,
    train_batch_size: int = Inputs.train_batch_size,
    sample_batch_size: int = Inputs.sample_batch_size,
    num_train_epochs: int = Inputs.num_train_epochs,
    max_train_steps: int = Inputs.max_train_steps,
    gradient_accumulation_steps: int = Inputs.gradient_accumulation_steps,
    gradient_checkpointing: bool = Inputs.gradient_checkpointing,
    learning_rate: float = Inputs.learning_rate,
    scale_lr: bool = Inputs.scale_lr,
    lr_scheduler: str = Inputs.lr_scheduler,
    lr_warmup_steps: int = Inputs.lr_warmup_steps,
    use_8bit_adam: bool = Inputs.use_8bit_adam,
    adam_beta1: float = Inputs.adam_beta1,
    adam_beta2: float = Inputs.adam_beta2,
    adam_weight_decay: float = Inputs.adam_weight_decay,
    adam_epsilon: float = Inputs.adam_epsilon,
    max_grad_norm: float = Inputs.max_grad_norm,
    ckpt_base: Path | None = Inputs.ckpt_base,
    offset_noise: float = Inputs.offset_noise,
    snr_gamma: float = Inputs.snr_gamma,
    hflip: bool = Inputs.hflip,
    mixed_precision: str = Inputs.mixed_precision,
    checkpointing_steps: int = Inputs.checkpointing_steps,
    resume: bool = Inputs.resume,
) -> TrainingOutput:
    """The same training, for `train:` in cog.yaml (POST /trainings with --x-mode train)."""
    inputs = dict(locals())
    from core import logs

    logs.configure()
    return TrainingOutput(weights=_train(inputs))
