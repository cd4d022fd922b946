"""Resumable training state without pickle.

accelerate's `save_state` pickles the optimizer and RNG states, and we never load a pickle.
A checkpoint here is a folder of safetensors (module weights, every tensor of the optimizer
state, the RNG state) plus JSON for everything else; it is written under a temporary name and
renamed into place, so a run killed while saving leaves the previous checkpoint intact. Only
the latest is kept.

    checkpoints/step-000120/ modules.safetensors  state.safetensors  state.json
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)
PREFIX = "step-"


def _flatten(value, key: str, tensors: dict[str, torch.Tensor]):
    """JSON for `value`, with every tensor moved into `tensors` (dict keys keep their types)."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[k, _flatten(v, f"{key}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint {type(value).__name__} at {key}")


def _unflatten(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, dict) and "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if isinstance(value, dict) and "__dict__" in value:
        return {k: _unflatten(v, tensors) for k, v in value["__dict__"]}
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value


@dataclass
class TrainingState:
    """Everything a run needs to continue exactly where it stopped."""

    step: int
    modules: dict[str, dict[str, torch.Tensor]]  # name -> state dict
    optimizer: dict
    lr_scheduler: dict
    generator: torch.Tensor


class CheckpointStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def latest(self) -> Path | None:
        done = sorted(p for p in self.directory.glob(f"{PREFIX}*") if p.suffix != ".partial")
        return done[-1] if done else None

    def save(self, state: TrainingState) -> Path:
        final = self.directory / f"{PREFIX}{state.step:06d}"
        partial = final.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        weights = {
            f"{name}.{key}": tensor.detach().cpu().contiguous()
            for name, module_state in state.modules.items()
            for key, tensor in module_state.items()
        }
        save_file(weights, partial / "modules.safetensors")
        tensors: dict[str, torch.Tensor] = {"generator": state.generator.cpu()}
        meta = {
            "step": state.step,
            "modules": sorted(state.modules),
            "optimizer": _flatten(state.optimizer, "optimizer", tensors),
            "lr_scheduler": _flatten(state.lr_scheduler, "lr_scheduler", tensors),
        }
        save_file(tensors, partial / "state.safetensors")
        (partial / "state.json").write_text(json.dumps(meta))
        partial.rename(final)
        for older in self.directory.glob(f"{PREFIX}*"):
            if older != final:
                shutil.rmtree(older, ignore_errors=True)
        log.info("checkpoint saved at step %d", state.step)
        return final

    def load(self, path: Path) -> TrainingState:
        meta = json.loads((path / "state.json").read_text())
        tensors = load_file(path / "state.safetensors")
        weights = load_file(path / "modules.safetensors")
        modules = {name: {} for name in meta["modules"]}
        for key, tensor in weights.items():
            name, _, param = key.partition(".")
            modules[name][param] = tensor
        return TrainingState(
            step=meta["step"],
            modules=modules,
            optimizer=_unflatten(meta["optimizer"], tensors),
            lr_scheduler=_unflatten(meta["lr_scheduler"], tensors),
            generator=tensors["generator"],
        )

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
