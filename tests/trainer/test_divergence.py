"""A run whose loss stops being finite fails, naming the step, and exports nothing."""

import re

import pytest
import torch

from tests.trainer.helpers import train
from trainer.divergence import DivergenceGuard, TrainingDivergedError


def test_a_diverging_run_fails_naming_the_step_and_exports_nothing(
    monkeypatch, tmp_path, tiny_sd15, photo_zip
):
    seen = []
    with pytest.raises(TrainingDivergedError) as error:
        train(
            monkeypatch,
            tiny_sd15,
            photo_zip,
            tmp_path / "work",
            learning_rate=1.0,
            max_train_steps=30,
            checkpointing_steps=1,
            callbacks=[lambda event: seen.append(torch.isfinite(event.loss).item())],
        )
    message = str(error.value)
    match = re.search(
        r"the loss became NaN or infinite at step (\d+) with learning_rate=1;", message
    )
    assert match, message
    first_bad = int(match.group(1))
    assert "Lower learning_rate" in message and "nothing was exported" in message
    assert seen == [True] * (first_bad - 1)  # a CPU run stops at that very step
    assert not list((tmp_path / "work").rglob("output.zip"))
    saved = sorted((tmp_path / "work").rglob("checkpoints/step-*"))
    assert saved and int(saved[-1].name.removeprefix("step-")) < first_bad


def test_the_first_non_finite_step_is_reported_when_read_back_later():
    guard = DivergenceGuard(torch.device("cpu"), {"learning_rate": 1e-3}, check_gradients=True)
    guard.observe(1, torch.tensor(0.5), torch.tensor(1.0))
    guard.observe(2, torch.tensor(0.5), torch.tensor(float("inf")))
    guard.observe(3, torch.tensor(float("nan")), None)
    with pytest.raises(
        TrainingDivergedError, match="the gradients became NaN or infinite at step 2"
    ):
        guard.check()


def test_inf_gradients_are_left_to_the_fp16_scaler():
    guard = DivergenceGuard(torch.device("cpu"), {"learning_rate": 1e-3}, check_gradients=False)
    guard.observe(1, torch.tensor(0.5), torch.tensor(float("inf")))
    guard.check()  # no error: under fp16 the scaler skips such a step
    guard.observe(2, torch.tensor(float("nan")), None)
    with pytest.raises(TrainingDivergedError, match="the loss became NaN or infinite at step 2"):
        guard.check()
