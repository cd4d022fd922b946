"""The accelerate `Accelerator` for one run, with the precision resolved for this machine.

One Cog server runs many trainings in one process, and accelerate keeps process-wide state;
outside a multi-process launch it is reset at the start of each run so one request's precision
cannot leak into the next.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from trainer.config import ConfigError, MixedPrecision


def resolve_precision(requested: MixedPrecision, cuda: bool) -> str:
    if requested is MixedPrecision.AUTO:
        if not cuda:
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested is MixedPrecision.FP16 and not cuda:
        raise ConfigError(
            "mixed_precision='fp16' needs a CUDA GPU and none is available; "
            "use 'bf16' or 'no' on a CPU (or 'auto' to choose)"
        )
    return requested.value


def launched_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_accelerator(precision: MixedPrecision, gradient_accumulation_steps: int) -> Accelerator:
    if not launched_distributed():
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    cuda = torch.cuda.is_available()
    if cuda:
        # Decision: TF32 matmuls and convolutions (Ampere and later): fp32 parts of a
        # mixed-precision step at tensor-core speed. The bench gives the peer --allow_tf32.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # cpu=True also lets accelerate recognise a multi-process CPU launch (gloo), e.g. in tests
    return Accelerator(
        mixed_precision=resolve_precision(precision, cuda),
        gradient_accumulation_steps=gradient_accumulation_steps,
        cpu=not cuda,
    )


def weight_dtype(accelerator: Accelerator) -> torch.dtype:
    """The dtype for frozen modules (VAE, a frozen text encoder): halved under mixed precision."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32
    )
