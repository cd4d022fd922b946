"""Cog adapter for the trainer: the inputs, declared for `cog build`, and two entry points.

- `run:`   `Predictor.run` returns `output.zip`, which is how the DreamBooth API runs trainers;
- `train:` `train` returns `TrainingOutput(weights=output.zip)`, Cog's training API.

Both take the same inputs and do the same (trainer/cog_run.py). This file is rendered from
trainer/config.py by trainer/inputs.py, because `cog build` reads the signatures statically
and resolves `Inputs.x` only within this file; tests/test_cog_adapters.py fails when it is
stale.
"""

# Rendered by buildkit/cog_adapters.py from trainer/config.py; edit there, then run:
# python -m buildkit.cog_adapters trainer.inputs:adapters trainer/predict.py

from cog import BaseModel, BaseRunner, Input, Path

from trainer.cog_run import check_base, run_training

LR_SCHEDULERS = [
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
]

PRECISIONS = [
    "auto",
    "no",
    "fp16",
    "bf16",
]

METHODS = [
    "full",
    "lora",
    "textual_inversion",
    "pivotal",
]


class Inputs:
    instance_prompt = Input(
        description="The prompt with the identifier of your subject, in the form 'a [identifier] [class noun]', where the identifier is a rare token such as 'sks' or 'zwx', e.g. 'a photo of sks dog'.",
    )
    class_prompt = Input(
        description="The prompt for the subject's class without the identifier, e.g. 'a photo of a dog'. Used for prior preservation.",
    )
    instance_data = Input(
        description="A .zip or .tar (any compression) of photos of your subject; folders, any common image format. Optional captions: captions.csv (image_file,caption) or name.txt beside name.jpg.",
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
        default=None,
        description="Negative prompt for the sample images.",
    )
    n_save_sample = Input(
        default=4,
        ge=1,
        le=16,
        description="Number of sample images to save.",
    )
    save_guidance_scale = Input(
        default=7.5,
        ge=0.0,
        le=50.0,
        description="Classifier-free guidance scale for the sample images.",
    )
    save_infer_steps = Input(
        default=50,
        ge=1,
        le=500,
        description="Denoising steps for the sample images.",
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
        default=1.0,
        ge=0.0,
        le=10.0,
        description="Weight of the prior-preservation loss.",
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
        default=False,
        description="Crop photos at the centre; otherwise at a random position.",
    )
    train_text_encoder = Input(
        default=True,
        description="Train the text encoder as well as the UNet (full fine-tune), or give it LoRA layers too (lora, pivotal).",
    )
    train_batch_size = Input(
        default=1,
        ge=1,
        le=64,
        description="Photos per batch (per device).",
    )
    sample_batch_size = Input(
        default=4,
        ge=1,
        le=64,
        description="Batch size when generating class images.",
    )
    num_train_epochs = Input(
        default=1,
        ge=1,
        le=10000,
        description="Epochs to train for when max_train_steps is 0.",
    )
    max_train_steps = Input(
        default=2000,
        ge=0,
        le=100000,
        description="Total optimizer steps. Overrides num_train_epochs; 0 trains for num_train_epochs instead.",
    )
    gradient_accumulation_steps = Input(
        default=1,
        ge=1,
        le=64,
        description="Batches to accumulate before each optimizer step.",
    )
    gradient_checkpointing = Input(
        default=False,
        description="Trade compute for memory: recompute activations in the backward pass.",
    )
    learning_rate = Input(
        default=1e-06,
        ge=0.0,
        le=1.0,
        description="Learning rate of the full fine-tune (method full), after any warmup; must be above 0.",
    )
    scale_lr = Input(
        default=False,
        description="Scale the learning rates by accumulation steps x batch size x devices.",
    )
    lr_scheduler = Input(
        default="constant",
        choices=LR_SCHEDULERS,
        description="Learning-rate schedule.",
    )
    lr_warmup_steps = Input(
        default=0,
        ge=0,
        le=100000,
        description="Steps over which the learning rate rises linearly from 0 (with 'constant' this means constant after warmup).",
    )
    use_8bit_adam = Input(
        default=False,
        description="Use bitsandbytes' 8-bit AdamW: less optimizer memory.",
    )
    adam_beta1 = Input(
        default=0.9,
        ge=0.0,
        le=0.9999,
        description="Adam beta1.",
    )
    adam_beta2 = Input(
        default=0.999,
        ge=0.0,
        le=0.99999,
        description="Adam beta2.",
    )
    adam_weight_decay = Input(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Weight decay.",
    )
    adam_epsilon = Input(
        default=1e-08,
        ge=0.0,
        le=1.0,
        description="Adam epsilon (above 0).",
    )
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
    method = Input(
        default="full",
        choices=METHODS,
        description="full: DreamBooth, the whole model (output: a complete pipeline, about 2 GB). lora: LoRA layers on the attention (a few MB). textual_inversion: new tokens only (KB). pivotal: new tokens and LoRA.",
    )
    lora_rank = Input(
        default=32,
        ge=1,
        le=256,
        description="Rank of the LoRA layers (lora, pivotal).",
    )
    lora_alpha = Input(
        default=None,
        ge=0.01,
        le=1024.0,
        description="LoRA alpha (lora, pivotal); empty for the rank, i.e. a scale of 1.",
    )
    lora_lr = Input(
        default=0.0001,
        ge=0.0,
        le=1.0,
        description="Learning rate of the LoRA layers (lora, pivotal).",
    )
    ti_lr = Input(
        default=0.0003,
        ge=0.0,
        le=1.0,
        description="Learning rate of the new token embeddings (textual_inversion, pivotal).",
    )
    num_new_tokens = Input(
        default=2,
        ge=1,
        le=16,
        description="New tokens that the token_string stands for (textual_inversion, pivotal).",
    )
    token_string = Input(
        default=None,
        description="The word of instance_prompt that becomes the new tokens (textual_inversion, pivotal); empty for the identifier found in instance_prompt and not in class_prompt, e.g. sks.",
    )
    initializer_token = Input(
        default=None,
        description="A word whose embedding starts the new tokens; empty for the class word of class_prompt (e.g. dog), else random.",
    )
    ti_fraction = Input(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="pivotal: the fraction of steps after which the embeddings freeze and only LoRA trains (cog-sdxl pivots halfway).",
    )


class Predictor(BaseRunner):
    def setup(self) -> None:
        check_base()

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
        method: str = Inputs.method,
        lora_rank: int = Inputs.lora_rank,
        lora_alpha: float | None = Inputs.lora_alpha,
        lora_lr: float = Inputs.lora_lr,
        ti_lr: float = Inputs.ti_lr,
        num_new_tokens: int = Inputs.num_new_tokens,
        token_string: str | None = Inputs.token_string,
        initializer_token: str | None = Inputs.initializer_token,
        ti_fraction: float = Inputs.ti_fraction,
    ) -> Path:
        inputs = dict(locals())
        del inputs["self"]
        return Path(run_training(inputs))


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
    method: str = Inputs.method,
    lora_rank: int = Inputs.lora_rank,
    lora_alpha: float | None = Inputs.lora_alpha,
    lora_lr: float = Inputs.lora_lr,
    ti_lr: float = Inputs.ti_lr,
    num_new_tokens: int = Inputs.num_new_tokens,
    token_string: str | None = Inputs.token_string,
    initializer_token: str | None = Inputs.initializer_token,
    ti_fraction: float = Inputs.ti_fraction,
) -> TrainingOutput:
    """The same training, for `train:` in cog.yaml (POST /trainings)."""
    inputs = dict(locals())
    return TrainingOutput(weights=Path(run_training(inputs)))
