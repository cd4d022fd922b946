"""Stop a run whose loss or gradients stop being finite, before it checkpoints or exports.

A learning rate that is too high makes the loss NaN within a few steps, and every weight soon
follows; a run that went on would export black images as a success. The guard records, on the
device, the first step whose loss (or gradient norm) was not finite, without a host sync per
step, and `check()` reads it back: every `check_every` steps, before every checkpoint and
before the export. The error names that first step, whenever it is read.
"""

from __future__ import annotations

import torch

from core.errors import UserError

# On a GPU reading a value back waits for the queued work, so it happens every few steps; on a
# CPU there is no queue and every step is checked.
GPU_CHECK_EVERY = 8


class TrainingDivergedError(UserError):
    """The loss or the gradients became NaN or infinite."""


class DivergenceGuard:
    def __init__(
        self, device: torch.device, learning_rates: dict[str, float], check_gradients: bool
    ):
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_gradient = torch.zeros((), dtype=torch.bool, device=device)
        self.learning_rates = learning_rates  # input name -> value, for the message
        # Under fp16 the gradient scaler expects occasional inf gradients and skips those steps.
        self.check_gradients = check_gradients
        self.check_every = 1 if device.type == "cpu" else GPU_CHECK_EVERY

    def observe(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        """Record step `step` (1-based): no host sync."""
        bad = ~torch.isfinite(loss.detach())
        if grad_norm is not None and self.check_gradients:
            bad_gradient = ~torch.isfinite(grad_norm.detach())
            self.bad_gradient |= bad_gradient & (self.first_bad < 0) & ~bad
            bad = bad | bad_gradient
        first = (self.first_bad < 0) & bad
        self.first_bad = torch.where(first, torch.full_like(self.first_bad, step), self.first_bad)

    def due(self, step: int) -> bool:
        return step % self.check_every == 0

    def check(self) -> None:
        """Raise `TrainingDivergedError` if any observed step was not finite (one host sync)."""
        step = int(self.first_bad.item())
        if step < 0:
            return
        what = "the gradients became" if bool(self.bad_gradient.item()) else "the loss became"
        rates = ", ".join(f"{name}={value:g}" for name, value in self.learning_rates.items())
        lower = " or ".join(
            f"{name} (for example to {value / 10:.1e})"
            for name, value in self.learning_rates.items()
        )
        raise TrainingDivergedError(
            f"training diverged: {what} NaN or infinite at step {step} with {rates}; nothing "
            f"was exported. Lower {lower} or set max_grad_norm, then train again."
        )
