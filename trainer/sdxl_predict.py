"""Cog adapter for the SDXL trainer (replicate/cog-sdxl's inputs): two entry points.

- `run:`   `Predictor.run` returns `trained_model.tar`;
- `train:` `train` returns `TrainingOutput(weights=trained_model.tar)`, as cog-sdxl's train.py.

Rendered from trainer/sdxl_config.py by trainer/sdxl_inputs.py (`cog build` reads it
statically); tests/trainer/test_sdxl_server.py fails when it is stale.
"""

# Rendered by buildkit/cog_adapters.py from trainer/sdxl_config.py; edit there, then run:
# python -m buildkit.cog_adapters trainer.sdxl_inputs:adapters trainer/sdxl_predict.py

from cog import BaseModel, BaseRunner, Input, Path

from trainer.cog_run import check_sdxl_base, run_sdxl_training

LR_SCHEDULERS = [
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
]

FILETYPES = [
    "infer",
    "zip",
    "tar",
]

PRECISIONS = [
    "auto",
    "no",
    "fp16",
    "bf16",
]


class Inputs:
    input_images = Input(
        description="A .zip or .tar (any compression) of photos; folders and any common image format. An optional captions.csv (image_file,caption) replaces the generated captions.",
    )
    seed = Input(
        default=None,
        ge=0,
        le=4294967295,
        description="Random seed; empty for a random one.",
    )
    resolution = Input(
        default=768,
        ge=64,
        le=2048,
        description="Square training resolution in pixels (a multiple of 8).",
    )
    train_batch_size = Input(
        default=4,
        ge=1,
        le=64,
        description="Photos per batch (per device).",
    )
    num_train_epochs = Input(
        default=4000,
        ge=1,
        le=100000,
        description="Epochs to train for when max_train_steps is 0.",
    )
    max_train_steps = Input(
        default=1000,
        ge=0,
        le=100000,
        description="Total optimizer steps; takes precedence over num_train_epochs (0: epochs).",
    )
    is_lora = Input(
        default=True,
        description="true: pivotal tuning with LoRA. false: pivotal tuning with the whole UNet.",
    )
    unet_learning_rate = Input(
        default=1e-06,
        ge=0.0,
        le=1.0,
        description="Learning rate of the UNet when is_lora is false.",
    )
    ti_lr = Input(
        default=0.0003,
        ge=0.0,
        le=1.0,
        description="Learning rate of the new token embeddings.",
    )
    lora_lr = Input(
        default=0.0001,
        ge=0.0,
        le=1.0,
        description="Learning rate of the LoRA layers.",
    )
    lora_rank = Input(
        default=32,
        ge=1,
        le=256,
        description="Rank of the LoRA layers.",
    )
    lr_scheduler = Input(
        default="constant",
        choices=LR_SCHEDULERS,
        description="Learning-rate schedule.",
    )
    lr_warmup_steps = Input(
        default=100,
        ge=0,
        le=100000,
        description="Warmup steps of the learning rate.",
    )
    token_string = Input(
        default="TOK",
        description="The word of the captions that becomes the new tokens <s0><s1>.",
    )
    caption_prefix = Input(
        default="a photo of TOK, ",
        description="Text before each generated caption; must contain token_string.",
    )
    mask_target_prompts = Input(
        default=None,
        description="Prompt for CLIPSeg masks of what matters (e.g. a dog); empty for no mask.",
    )
    crop_based_on_salience = Input(
        default=True,
        description="Crop around the mask's centre of mass instead of the photo's centre.",
    )
    use_face_detection_instead = Input(
        default=False,
        description="Mask faces found by a face detector instead of CLIPSeg.",
    )
    clipseg_temperature = Input(
        default=1.0,
        ge=0.01,
        le=100.0,
        description="How soft CLIPSeg masks are: higher is softer.",
    )
    verbose = Input(
        default=True,
        description="Log every preprocessing step.",
    )
    checkpointing_steps = Input(
        default=999999,
        ge=0,
        le=999999,
        description="Save resumable state every N steps (0 or 999999: never).",
    )
    input_images_filetype = Input(
        default="infer",
        choices=FILETYPES,
        description="Ignored: archives are recognised by their content.",
    )
    max_grad_norm = Input(
        default=1.0,
        ge=0.0,
        le=1000.0,
        description="Clip gradients to this global norm; 0 disables clipping.",
    )
    mixed_precision = Input(
        default="auto",
        choices=PRECISIONS,
        description="auto: bf16 on GPUs that support it, else fp16; fp32 on CPU.",
    )
    gradient_checkpointing = Input(
        default=False,
        description="Trade compute for memory: recompute activations in the backward pass.",
    )
    use_8bit_adam = Input(
        default=False,
        description="Use bitsandbytes' 8-bit AdamW: less optimizer memory.",
    )
    snr_gamma = Input(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="Min-SNR loss weighting gamma (5 is usual; 0 = off).",
    )
    offset_noise = Input(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Offset-noise strength (0.1 is usual; 0 = off).",
    )
    hflip = Input(
        default=False,
        description="Randomly mirror photos horizontally.",
    )
    resume = Input(
        default=True,
        description="Resume from the last checkpoint of an identical earlier run.",
    )
    save_sample_prompt = Input(
        default=None,
        description="If set, sample images of this prompt (TOK for the subject) go in samples/.",
    )
    ti_fraction = Input(
        default=0.5,
        ge=0.01,
        le=1.0,
        description="Fraction of the steps after which the token embeddings freeze.",
    )
    train_text_encoder = Input(
        default=False,
        description="Also give both text encoders LoRA layers (is_lora only).",
    )


class Predictor(BaseRunner):
    def setup(self) -> None:
        check_sdxl_base()

    def run(
        self,
        input_images: Path = Inputs.input_images,
        seed: int | None = Inputs.seed,
        resolution: int = Inputs.resolution,
        train_batch_size: int = Inputs.train_batch_size,
        num_train_epochs: int = Inputs.num_train_epochs,
        max_train_steps: int = Inputs.max_train_steps,
        is_lora: bool = Inputs.is_lora,
        unet_learning_rate: float = Inputs.unet_learning_rate,
        ti_lr: float = Inputs.ti_lr,
        lora_lr: float = Inputs.lora_lr,
        lora_rank: int = Inputs.lora_rank,
        lr_scheduler: str = Inputs.lr_scheduler,
        lr_warmup_steps: int = Inputs.lr_warmup_steps,
        token_string: str = Inputs.token_string,
        caption_prefix: str = Inputs.caption_prefix,
        mask_target_prompts: str | None = Inputs.mask_target_prompts,
        crop_based_on_salience: bool = Inputs.crop_based_on_salience,
        use_face_detection_instead: bool = Inputs.use_face_detection_instead,
        clipseg_temperature: float = Inputs.clipseg_temperature,
        verbose: bool = Inputs.verbose,
        checkpointing_steps: int = Inputs.checkpointing_steps,
        input_images_filetype: str = Inputs.input_images_filetype,
        max_grad_norm: float = Inputs.max_grad_norm,
        mixed_precision: str = Inputs.mixed_precision,
        gradient_checkpointing: bool = Inputs.gradient_checkpointing,
        use_8bit_adam: bool = Inputs.use_8bit_adam,
        snr_gamma: float = Inputs.snr_gamma,
        offset_noise: float = Inputs.offset_noise,
        hflip: bool = Inputs.hflip,
        resume: bool = Inputs.resume,
        save_sample_prompt: str | None = Inputs.save_sample_prompt,
        ti_fraction: float = Inputs.ti_fraction,
        train_text_encoder: bool = Inputs.train_text_encoder,
    ) -> Path:
        inputs = dict(locals())
        del inputs["self"]
        return Path(run_sdxl_training(inputs))


class TrainingOutput(BaseModel):
    weights: Path


def train(
    input_images: Path = Inputs.input_images,
    seed: int | None = Inputs.seed,
    resolution: int = Inputs.resolution,
    train_batch_size: int = Inputs.train_batch_size,
    num_train_epochs: int = Inputs.num_train_epochs,
    max_train_steps: int = Inputs.max_train_steps,
    is_lora: bool = Inputs.is_lora,
    unet_learning_rate: float = Inputs.unet_learning_rate,
    ti_lr: float = Inputs.ti_lr,
    lora_lr: float = Inputs.lora_lr,
    lora_rank: int = Inputs.lora_rank,
    lr_scheduler: str = Inputs.lr_scheduler,
    lr_warmup_steps: int = Inputs.lr_warmup_steps,
    token_string: str = Inputs.token_string,
    caption_prefix: str = Inputs.caption_prefix,
    mask_target_prompts: str | None = Inputs.mask_target_prompts,
    crop_based_on_salience: bool = Inputs.crop_based_on_salience,
    use_face_detection_instead: bool = Inputs.use_face_detection_instead,
    clipseg_temperature: float = Inputs.clipseg_temperature,
    verbose: bool = Inputs.verbose,
    checkpointing_steps: int = Inputs.checkpointing_steps,
    input_images_filetype: str = Inputs.input_images_filetype,
    max_grad_norm: float = Inputs.max_grad_norm,
    mixed_precision: str = Inputs.mixed_precision,
    gradient_checkpointing: bool = Inputs.gradient_checkpointing,
    use_8bit_adam: bool = Inputs.use_8bit_adam,
    snr_gamma: float = Inputs.snr_gamma,
    offset_noise: float = Inputs.offset_noise,
    hflip: bool = Inputs.hflip,
    resume: bool = Inputs.resume,
    save_sample_prompt: str | None = Inputs.save_sample_prompt,
    ti_fraction: float = Inputs.ti_fraction,
    train_text_encoder: bool = Inputs.train_text_encoder,
) -> TrainingOutput:
    """The same training, for `train:` in cog.yaml (POST /trainings)."""
    inputs = dict(locals())
    return TrainingOutput(weights=Path(run_sdxl_training(inputs)))
