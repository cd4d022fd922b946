"""What both Cog entry points of the trainer do with their inputs (trainer/predict.py).

Kept out of the rendered adapter so that it stays declarations only, and light to import:
everything heavy is imported when a training starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

FILE_INPUTS = ("instance_data", "class_data", "ckpt_base")


def check_base(family: str | None = None) -> None:
    """At setup: say whether a base model is there, without failing (the image may lack it)."""
    from core import logs
    from core.errors import WeightsMissingError
    from core.manifest import Family
    from trainer.base_model import base_model_dir, describe_base

    logs.configure()
    try:
        describe_base(base_model_dir(), Family(family) if family else None)
    except WeightsMissingError as error:
        logging.warning("%s (training requests will fail until it is there)", error)


def check_sdxl_base() -> None:
    check_base("sdxl")


def run_sdxl_training(inputs: dict) -> Path:
    """The SDXL trainer's request: returns trained_model.tar and records the metrics."""
    from trainer.sdxl_config import SDXLConfig
    from trainer.sdxl_job import train

    return _run(SDXLConfig, train, inputs, ("input_images",)).output


def run_training(inputs: dict) -> Path:
    """Train on the inputs of one request; returns output.zip and records the metrics."""
    from cog import current_scope

    from trainer.config import TrainConfig
    from trainer.job import train

    result = _run(TrainConfig, train, inputs, FILE_INPUTS)
    current_scope().record_metric("train_seconds", result.summary["seconds"])
    return result.output


def _run(config_class, train, inputs: dict, file_inputs: tuple[str, ...]):
    """One request of either trainer: file inputs must be uploads, an unexpected failure
    carries its cause and the last log lines, and the run's metrics are recorded."""
    from cog import current_scope

    from core import logs
    from core.errors import with_cause
    from core.logs import LogTail
    from core.uploads import require_upload

    logs.configure()
    for name in file_inputs:
        require_upload(name, inputs[name])
    with LogTail() as tail:
        try:
            result = train(config_class(**inputs))
        except Exception as error:
            raise with_cause(error, tail.text()) from error
    scope = current_scope()
    scope.record_metric("steps", result.steps)
    scope.record_metric("resumed_from_step", result.resumed_from)
    scope.record_metric("final_loss", result.summary["final_loss"])
    return result
