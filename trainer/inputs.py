"""The trainer's Cog inputs, rendered from TrainConfig: trainer/predict.py is generated here.

Each TrainConfig field declares its description and bounds (trainer/config.py); its type,
default and choices come from the field itself. So the schema, the adapter's signatures and
the config's checks cannot disagree. Build-time only: the running trainer does not import it.

    python -m buildkit.cog_adapters trainer.inputs:adapters trainer/predict.py
"""

from __future__ import annotations

import pathlib
import types
import typing
from dataclasses import MISSING, fields
from enum import Enum

from buildkit.cog_adapters import REQUIRED, AdapterClass, Choices, InputSpec, Module, Signature
from trainer.config import TrainConfig

RENDER = "python -m buildkit.cog_adapters trainer.inputs:adapters trainer/predict.py"
CHOICE_NAMES = {
    "lr_scheduler": "LR_SCHEDULERS",
    "mixed_precision": "PRECISIONS",
    "method": "METHODS",
}


def _kind(annotation) -> tuple[type, bool]:
    """(type, nullable) of a field annotation such as `Path | None`."""
    if isinstance(annotation, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kinds[0], True
    return annotation, False


def spec_of(field, hints: dict, choice_names: dict[str, str] = CHOICE_NAMES) -> InputSpec:
    kind, nullable = _kind(hints[field.name])
    bounds = field.metadata["input"]
    default = REQUIRED if field.default is MISSING else field.default
    choices = None
    if isinstance(kind, type) and issubclass(kind, Enum):
        choices = Choices(choice_names[field.name], tuple(member.value for member in kind))
        default, kind = (default.value if isinstance(default, Enum) else default), str
    return InputSpec(
        field.name,
        pathlib.Path if kind is pathlib.Path else kind,
        bounds.description,
        default=default,
        nullable=nullable,
        ge=bounds.ge,
        le=bounds.le,
        choices=choices,
    )


def specs(config: type = TrainConfig, choice_names: dict[str, str] = CHOICE_NAMES) -> list:
    hints = typing.get_type_hints(config)
    return [spec_of(field, hints, choice_names) for field in fields(config)]


SETUP = """
def setup(self) -> None:
    {check}()
"""
RUN = """
inputs = dict(locals())
del inputs["self"]
return Path({run}(inputs))
"""
TRAIN = """
inputs = dict(locals())
return TrainingOutput(weights=Path({run}(inputs)))
"""
OUTPUT = """
class TrainingOutput(BaseModel):
    weights: Path
"""
DOCSTRING = """
Cog adapter for the trainer: the inputs, declared for `cog build`, and two entry points.

- `run:`   `Predictor.run` returns `output.zip`, which is how the DreamBooth API runs trainers;
- `train:` `train` returns `TrainingOutput(weights=output.zip)`, Cog's training API.

Both take the same inputs and do the same (trainer/cog_run.py). This file is rendered from
trainer/config.py by trainer/inputs.py, because `cog build` reads the signatures statically
and resolves `Inputs.x` only within this file; tests/test_cog_adapters.py fails when it is
stale.
"""


def adapters() -> Module:
    """The Module that trainer/predict.py is rendered from."""
    return trainer_module(
        TrainConfig, CHOICE_NAMES, ("check_base", "run_training"), DOCSTRING, RENDER
    )


def trainer_module(config, choice_names, entry: tuple[str, str], docstring, command) -> Module:
    """A trainer's Cog adapter: `Predictor.run` and `train` over every field of `config`,
    `entry` = (the setup check, the training call) in trainer/cog_run.py."""
    check, run = entry
    names = tuple(f.name for f in fields(config))
    predictor = AdapterClass(
        "Predictor",
        ("BaseRunner",),
        Signature("run", names, "Path", RUN.format(run=run)),
        members=SETUP.format(check=check),
    )
    train = Signature(
        "train",
        names,
        "TrainingOutput",
        TRAIN.format(run=run),
        method=False,
        docstring="The same training, for `train:` in cog.yaml (POST /trainings).",
    )
    return Module(
        docstring=docstring,
        imports=[
            "from cog import BaseModel, BaseRunner, Input, Path",
            "",
            f"from trainer.cog_run import {check}, {run}",
        ],
        inputs=specs(config, choice_names),
        parts=[predictor, OUTPUT, train],
        source=f"trainer/{config.__module__.split('.')[-1]}.py",
        command=command,
    )
