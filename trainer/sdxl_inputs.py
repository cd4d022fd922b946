"""The SDXL trainer's Cog inputs, rendered from SDXLConfig into trainer/sdxl_predict.py.

python -m buildkit.cog_adapters trainer.sdxl_inputs:adapters trainer/sdxl_predict.py
"""

from __future__ import annotations

import typing
from dataclasses import fields

from buildkit.cog_adapters import AdapterClass, InputSpec, Module, Signature
from trainer.inputs import OUTPUT, spec_of
from trainer.sdxl_config import SDXLConfig

RENDER = "python -m buildkit.cog_adapters trainer.sdxl_inputs:adapters trainer/sdxl_predict.py"
CHOICE_NAMES = {
    "lr_scheduler": "LR_SCHEDULERS",
    "mixed_precision": "PRECISIONS",
    "input_images_filetype": "FILETYPES",
}
SETUP = """
def setup(self) -> None:
    check_sdxl_base()
"""
RUN = """
inputs = dict(locals())
del inputs["self"]
return Path(run_sdxl_training(inputs))
"""
TRAIN = """
inputs = dict(locals())
return TrainingOutput(weights=Path(run_sdxl_training(inputs)))
"""
DOCSTRING = """
Cog adapter for the SDXL trainer (replicate/cog-sdxl's inputs): two entry points.

- `run:`   `Predictor.run` returns `trained_model.tar`;
- `train:` `train` returns `TrainingOutput(weights=trained_model.tar)`, as cog-sdxl's train.py.

Rendered from trainer/sdxl_config.py by trainer/sdxl_inputs.py (`cog build` reads it
statically); tests/trainer/test_sdxl_server.py fails when it is stale.
"""


def specs() -> list[InputSpec]:
    hints = typing.get_type_hints(SDXLConfig)
    return [spec_of(field, hints, CHOICE_NAMES) for field in fields(SDXLConfig)]


def adapters() -> Module:
    names = tuple(f.name for f in fields(SDXLConfig))
    predictor = AdapterClass(
        "Predictor", ("BaseRunner",), Signature("run", names, "Path", RUN), members=SETUP
    )
    train = Signature(
        "train",
        names,
        "TrainingOutput",
        TRAIN,
        method=False,
        docstring="The same training, for `train:` in cog.yaml (POST /trainings).",
    )
    return Module(
        docstring=DOCSTRING,
        imports=[
            "from cog import BaseModel, BaseRunner, Input, Path",
            "",
            "from trainer.cog_run import check_sdxl_base, run_sdxl_training",
        ],
        inputs=specs(),
        parts=[predictor, OUTPUT, train],
        source="trainer/sdxl_config.py",
        command=RENDER,
    )
