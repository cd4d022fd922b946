"""The trainer's adapter outputs (LoRA, text-encoder LoRA, textual inversion), built once."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.trainer.helpers import train

# 64 px, 2 steps, no class images: seconds each. The learning rates are high so that two steps
# change the image clearly.
SETTINGS = dict(with_prior_preservation=False, max_train_steps=2, train_text_encoder=False)
METHODS = {
    "lora": dict(method="lora", lora_rank=4, lora_lr=5e-2),
    "lora_te": dict(method="lora", lora_rank=4, lora_lr=5e-2, train_text_encoder=True),
    "textual_inversion": dict(method="textual_inversion", ti_lr=5e-1),
}


@dataclass(frozen=True)
class AdapterOutput:
    zip: Path  # output.zip as the trainer wrote it
    folder: Path  # the same, unzipped: what the build step copies to /src/weights


def build(root: Path, base: Path, photos: Path) -> dict[str, AdapterOutput]:
    built = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, overrides in METHODS.items():
            result = train(monkeypatch, base, photos, root / name, **{**SETTINGS, **overrides})
            folder = root / f"{name}-weights"
            zipfile.ZipFile(result.output).extractall(folder)
            built[name] = AdapterOutput(result.output, folder)
    return built
