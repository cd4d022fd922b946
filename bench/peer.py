"""Run a peer's training script by path and time its optimizer steps, as we time ours.

    python -m bench.peer PATH/TO/train_dreambooth.py -- --pretrained_model_name_or_path ...

The script is the user's copy of diffusers' example (never copied into this repository); it
runs unchanged, as `__main__`, in this process. Steps are timed with PyTorch's global
optimizer-step hook, after a CUDA sync, exactly as `bench/train.py` times ours; peak memory is
`torch.cuda.max_memory_allocated` read when the script returns. The result is reported to the
parent like every bench worker (bench/workers.py).
"""

from __future__ import annotations

import resource
import runpy
import sys
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from bench import workers


class StepClock:
    """Wall-clock time after every optimizer step of any optimizer in this process."""

    def __init__(self):
        self.stamps: list[float] = []
        self.handle = register_optimizer_step_post_hook(self._stamp)

    def _stamp(self, optimizer, args, kwargs) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


def memory() -> dict:
    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        peak["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def main(argv: list[str]) -> None:
    script, _, args = argv[0], argv[1], argv[2:]
    clock = StepClock()
    started = time.perf_counter()
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
    workers.report(
        {"stamps": clock.stamps, "wall_seconds": time.perf_counter() - started, **memory()}
    )


if __name__ == "__main__":
    main(sys.argv[1:])
