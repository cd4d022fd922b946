"""The configurations the training bench compares, and how each side is asked to run them.

The same `Setting` becomes a `TrainConfig` for ours and command-line flags for the peer, the
diffusers example of the same method (whose own defaults already match ours for optimizer
betas, weight decay, epsilon and gradient clipping):

    full               examples/dreambooth/train_dreambooth.py
    lora, pivotal      examples/dreambooth/train_dreambooth_lora.py (diffusers has no SD1.5
                       pivotal script: LoRA is its nearest peer)
    textual_inversion  examples/textual_inversion/textual_inversion.py
    SDXL (pivotal)     examples/dreambooth/train_dreambooth_lora_sdxl.py: ours pivots after 1%
                       of the steps (ti_fraction=0.01), so nearly every step is the UNet LoRA
                       step the peer makes
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.peer import StepClock, memory

PROMPT, CLASS_PROMPT = "a photo of sks cat", "a photo of a cat"
LEARNING_RATE = 5e-6
LORA_LR, TI_LR, LORA_RANK, NEW_TOKENS = 1e-4, 3e-4, 32, 2
CLASS_IMAGES = 8


@dataclass(frozen=True)
class Setting:
    name: str
    train_text_encoder: bool = False
    gradient_checkpointing: bool = False
    with_prior_preservation: bool = False
    use_8bit_adam: bool = False
    method: str = "full"
    family: str = "sd15"


METHOD_CONFIGS = {
    "lora": [
        Setting("lora", method="lora"),
        Setting("lora+gc+8bit", gradient_checkpointing=True, use_8bit_adam=True, method="lora"),
    ],
    "textual_inversion": [Setting("ti", method="textual_inversion")],
    "pivotal": [Setting("pivotal", method="pivotal")],
}
SDXL_CONFIGS = [
    Setting("sdxl-lora", method="pivotal", family="sdxl"),
    Setting(
        "sdxl-lora+gc+8bit",
        gradient_checkpointing=True,
        use_8bit_adam=True,
        method="pivotal",
        family="sdxl",
    ),
]
SDXL_PROMPT = "a photo of TOK cat"
CONFIGS = {
    s.name: s
    for s in [
        Setting("unet"),
        Setting("unet+te", train_text_encoder=True),
        Setting("unet+te+gc", train_text_encoder=True, gradient_checkpointing=True),
        Setting("unet+te+prior", train_text_encoder=True, with_prior_preservation=True),
        Setting(
            "unet+te+gc+8bit",
            train_text_encoder=True,
            gradient_checkpointing=True,
            use_8bit_adam=True,
        ),
    ]
}
CONFIGS.update({s.name: s for settings in METHOD_CONFIGS.values() for s in settings})
CONFIGS.update({s.name: s for s in SDXL_CONFIGS})


def configs_for(method: str, family: str = "sd15") -> list[str]:
    if family == "sdxl":
        return [s.name for s in SDXL_CONFIGS]
    if method == "full":
        return [name for name, s in CONFIGS.items() if s.method == "full"]
    return [s.name for s in METHOD_CONFIGS[method]]


def sdxl_config(args, setting: Setting, photos: Path):
    from trainer.sdxl_config import SDXLConfig

    return SDXLConfig(
        input_images=photos,
        caption_prefix=SDXL_PROMPT,
        resolution=args.resolution,
        train_batch_size=1,
        max_train_steps=args.steps,
        lora_lr=LORA_LR,
        ti_lr=TI_LR,
        lora_rank=LORA_RANK,
        ti_fraction=0.01,
        lr_scheduler="constant",
        lr_warmup_steps=0,
        mixed_precision=args.precision,
        gradient_checkpointing=setting.gradient_checkpointing,
        use_8bit_adam=setting.use_8bit_adam,
        checkpointing_steps=10 * args.steps,
        seed=0,
    )


def run_ours(args, setting: Setting) -> dict:
    """In the child: our trainer on the setting, timed like the peer."""
    from trainer import job, sdxl_job
    from trainer.config import TrainConfig

    with tempfile.TemporaryDirectory() as work:
        os.environ.update(BASE_MODEL_DIR=args.base, TRAINER_WORK_DIR=work)
        os.environ.setdefault("PREPROCESS_WEIGHTS_DIR", str(Path(work) / "no-preprocess"))
        if setting.family == "sdxl":
            clock, started = StepClock(), time.perf_counter()
            result = sdxl_job.train(sdxl_config(args, setting, Path(args.photos)))
            return _measured(clock, started, result)
        cfg = TrainConfig(
            instance_prompt=PROMPT,
            class_prompt=CLASS_PROMPT,
            instance_data=Path(args.photos),
            with_prior_preservation=setting.with_prior_preservation,
            num_class_images=CLASS_IMAGES,
            resolution=args.resolution,
            max_train_steps=args.steps,
            learning_rate=LEARNING_RATE,
            mixed_precision=args.precision,
            use_8bit_adam=setting.use_8bit_adam,
            gradient_checkpointing=setting.gradient_checkpointing,
            train_text_encoder=setting.train_text_encoder,
            method=setting.method,
            lora_lr=LORA_LR,
            ti_lr=TI_LR,
            lora_rank=LORA_RANK,
            num_new_tokens=NEW_TOKENS,
            checkpointing_steps=0,
            seed=0,
        )
        clock, started = StepClock(), time.perf_counter()
        return _measured(clock, started, job.train(cfg))


def _measured(clock: StepClock, started: float, result) -> dict:
    wall = time.perf_counter() - started
    return {
        "stamps": clock.stamps,
        "started": started,
        "wall_seconds": round(wall, 3),
        "final_loss": result.summary["final_loss"],
        "output_mb": round(result.output.stat().st_size / 2**20, 3),
        **memory(),
    }


def peer_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def peer_flags(args, setting: Setting, base: Path, photos: Path, out: Path) -> list[str]:
    if setting.method == "textual_inversion":
        return textual_inversion_flags(args, base, photos, out)
    sdxl = setting.family == "sdxl"
    flags = [
        "--pretrained_model_name_or_path",
        str(base),
        "--instance_data_dir",
        str(photos),
        "--instance_prompt",
        SDXL_PROMPT if sdxl else PROMPT,
        "--learning_rate",
        str(LEARNING_RATE if setting.method == "full" else LORA_LR),
        *common_flags(args, out),
    ]
    if setting.method != "full":
        flags += ["--rank", str(LORA_RANK)]
    if setting.train_text_encoder:
        flags.append("--train_text_encoder")
    if setting.gradient_checkpointing:
        flags.append("--gradient_checkpointing")
    if setting.use_8bit_adam:
        flags.append("--use_8bit_adam")
    if setting.with_prior_preservation:
        flags += [
            "--with_prior_preservation",
            "--class_prompt",
            CLASS_PROMPT,
            "--class_data_dir",
            str(out.parent / f"{out.name}-class"),
            "--num_class_images",
            str(CLASS_IMAGES),
        ]
    return flags


def common_flags(args, out: Path) -> list[str]:
    flags = [
        "--resolution",
        str(args.resolution),
        "--train_batch_size",
        "1",
        "--lr_scheduler",
        "constant",
        "--max_train_steps",
        str(args.steps),
        "--checkpointing_steps",
        str(10 * args.steps),
        "--mixed_precision",
        peer_precision(args.precision),
        "--seed",
        "0",
        "--output_dir",
        str(out),
        "--report_to",
        "all",  # whatever trackers are installed, as its default "tensorboard" would
    ]
    if torch.cuda.is_available():
        flags.append("--allow_tf32")  # ours enables TF32 on CUDA: the same for the peer
    return flags


def textual_inversion_flags(args, base: Path, photos: Path, out: Path) -> list[str]:
    return [
        "--pretrained_model_name_or_path",
        str(base),
        "--train_data_dir",
        str(photos),
        "--placeholder_token",
        "<sks>",
        "--initializer_token",
        "cat",
        "--learnable_property",
        "object",
        "--num_vectors",
        str(NEW_TOKENS),
        "--learning_rate",
        str(TI_LR),
        "--save_steps",
        str(10 * args.steps),
        *common_flags(args, out),
    ]
