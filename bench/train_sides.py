"""The configurations the training bench compares, and how each side is asked to run them.

The same `Setting` becomes a `TrainConfig` for ours and command-line flags for the peer
(diffusers' examples/dreambooth/train_dreambooth.py, whose own defaults already match ours for
optimizer betas, weight decay, epsilon and gradient clipping).
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
CLASS_IMAGES = 8


@dataclass(frozen=True)
class Setting:
    name: str
    train_text_encoder: bool = False
    gradient_checkpointing: bool = False
    with_prior_preservation: bool = False
    use_8bit_adam: bool = False


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


def run_ours(args, setting: Setting) -> dict:
    """In the child: our trainer on the setting, timed like the peer."""
    from trainer import job
    from trainer.config import TrainConfig

    with tempfile.TemporaryDirectory() as work:
        os.environ.update(BASE_MODEL_DIR=args.base, TRAINER_WORK_DIR=work)
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
            checkpointing_steps=0,
            seed=0,
        )
        clock, started = StepClock(), time.perf_counter()
        result = job.train(cfg)
        wall = time.perf_counter() - started
    return {
        "stamps": clock.stamps,
        "started": started,
        "wall_seconds": round(wall, 3),
        "final_loss": result.summary["final_loss"],
        **memory(),
    }


def peer_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def peer_flags(args, setting: Setting, base: Path, photos: Path, out: Path) -> list[str]:
    flags = [
        "--pretrained_model_name_or_path",
        str(base),
        "--instance_data_dir",
        str(photos),
        "--instance_prompt",
        PROMPT,
        "--resolution",
        str(args.resolution),
        "--train_batch_size",
        "1",
        "--learning_rate",
        str(LEARNING_RATE),
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
