"""The SDXL trainer's Cog inputs, rendered from SDXLConfig into trainer/sdxl_predict.py.

python -m buildkit.cog_adapters trainer.sdxl_inputs:adapters trainer/sdxl_predict.py
"""

from __future__ import annotations

from buildkit.cog_adapters import Module
from trainer.inputs import trainer_module
from trainer.sdxl_config import SDXLConfig

RENDER = "python -m buildkit.cog_adapters trainer.sdxl_inputs:adapters trainer/sdxl_predict.py"
CHOICE_NAMES = {
    "lr_scheduler": "LR_SCHEDULERS",
    "mixed_precision": "PRECISIONS",
    "input_images_filetype": "FILETYPES",
}
DOCSTRING = """
Cog adapter for the SDXL trainer (replicate/cog-sdxl's inputs): two entry points.

- `run:`   `Predictor.run` returns `trained_model.tar`;
- `train:` `train` returns `TrainingOutput(weights=trained_model.tar)`, as cog-sdxl's train.py.

Rendered from trainer/sdxl_config.py by trainer/sdxl_inputs.py (`cog build` reads it
statically); tests/trainer/test_sdxl_server.py fails when it is stale.
"""


def adapters() -> Module:
    entry = ("check_sdxl_base", "run_sdxl_training")
    return trainer_module(SDXLConfig, CHOICE_NAMES, entry, DOCSTRING, RENDER)
