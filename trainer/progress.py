"""Progress as plain log lines (Cog keeps `\\r` verbatim, so no tqdm bars) and final metrics.

A line every `interval` steps (about 40 lines a run) and at least every 30 s, plus the first
and last step:

    step 120/2000 | loss 0.1234 | lr 1.00e-06 | 3.21 steps/s | ETA 9m45s
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import torch

LINES_PER_RUN = 40
MAX_SILENCE_S = 30.0


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class Progress:
    """Losses arrive as device tensors and are read back only when a line is due, so the
    training step never waits for the GPU to print."""

    total: int
    start_step: int = 0
    emit: callable = print
    interval: int = 0
    started: float = field(default_factory=time.monotonic)
    last_emit: float = field(default_factory=time.monotonic)
    window: deque = field(default_factory=deque)  # the losses since the last line
    last_mean: float = float("nan")

    def __post_init__(self) -> None:
        self.interval = self.interval or max(1, self.total // LINES_PER_RUN)
        self.window = deque(maxlen=self.interval)

    def steps_per_second(self, step: int) -> float:
        elapsed = time.monotonic() - self.started
        done = step - self.start_step
        return done / elapsed if elapsed > 0 and done > 0 else 0.0

    def update(self, step: int, loss: torch.Tensor | float, lr: float) -> None:
        """Record optimizer step `step` (1-based) and log when it is time."""
        self.window.append(torch.as_tensor(loss).detach())
        now = time.monotonic()
        due = step % self.interval == 0 or now - self.last_emit >= MAX_SILENCE_S
        if not (due or step == self.start_step + 1 or step == self.total):
            return
        rate = self.steps_per_second(step)
        eta = (self.total - step) / rate if rate else 0.0
        self.emit(
            f"step {step}/{self.total} | loss {self.mean_loss():.4f} | lr {lr:.2e} | "
            f"{rate:.2f} steps/s | ETA {format_duration(eta)}",
            flush=True,
        )
        self.last_emit = now

    def mean_loss(self) -> float:
        """The mean loss over the last `interval` steps (one host sync)."""
        if self.window:
            self.last_mean = torch.stack(list(self.window)).float().mean().item()
        return self.last_mean

    def summary(self) -> dict[str, float]:
        return {
            "seconds": round(time.monotonic() - self.started, 3),
            "final_loss": round(self.mean_loss(), 6),
        }
