"""Ways a weights folder can be broken, each made from a good one, with what its error must say."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

UNET = "unet/diffusion_pytorch_model.safetensors"


@dataclass(frozen=True)
class Breakage:
    name: str
    damage: Callable[[Path], None]
    says: tuple[str, ...]  # fragments the error must contain, besides the folder's name


def _truncate(folder: Path) -> None:
    path = folder / UNET
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _pickle(folder: Path) -> None:
    (folder / UNET).unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04\x95fake pickle")


def _sdxl(folder: Path) -> None:
    _edit_json(folder / "model_index.json", _class_name="StableDiffusionXLPipeline")
    _edit_json(folder / "manifest.json", family="sdxl")


def _bad_index(folder: Path) -> None:
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline",')


def _bad_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("{not json")


def _future_manifest(folder: Path) -> None:
    _edit_json(folder / "manifest.json", format_version=99)


def _no_text_encoder(folder: Path) -> None:
    shutil.rmtree(folder / "text_encoder")


def _unet_config_mismatch(folder: Path) -> None:
    _edit_json(folder / "unet" / "config.json", block_out_channels=[32, 96])


def _text_encoder_config_mismatch(folder: Path) -> None:
    # transformers would initialise the missing layer randomly and only log it
    _edit_json(folder / "text_encoder" / "config.json", num_hidden_layers=3)


def _nan_unet(folder: Path) -> None:
    tensors = load_file(folder / UNET)
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, folder / UNET)


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


BREAKAGES = [
    Breakage("truncated_unet", _truncate, (UNET, "is truncated")),
    Breakage("pickle_unet", _pickle, ("unet/diffusion_pytorch_model.bin", "is a pickle")),
    Breakage("sdxl_weights", _sdxl, ("model_index.json", "SDXL weights", "SD1.5 only")),
    Breakage("bad_model_index", _bad_index, ("model_index.json", "is not valid JSON")),
    Breakage("bad_manifest", _bad_manifest, ("manifest.json", "not valid JSON")),
    Breakage("future_manifest", _future_manifest, ("manifest.json", "format_version 99")),
    Breakage("no_text_encoder", _no_text_encoder, ("text_encoder/", "is missing")),
    Breakage("unet_config_mismatch", _unet_config_mismatch, ("unet/", "config", "does not match")),
    Breakage(
        "text_encoder_config_mismatch",
        _text_encoder_config_mismatch,
        ("text_encoder/config.json", "does not match the weights"),
    ),
    Breakage("nan_unet", _nan_unet, ("unet/", "NaN or infinite", "lower learning_rate")),
]


def broken_copy(good: Path, breakage: Breakage, parent: Path) -> Path:
    """A copy of `good` named weights/ (as /src/weights is), damaged."""
    folder = shutil.copytree(good, parent / breakage.name / "weights")
    breakage.damage(folder)
    return folder


def assert_names_the_problem(message: str, breakage: Breakage, server_paths: list[Path]) -> None:
    assert "The weights in weights/ cannot be used" in message, message
    for fragment in breakage.says:
        assert fragment in message, (fragment, message)
    for path in server_paths:
        assert str(path) not in message, message
    assert "Traceback" not in message and "<" not in message and "torch.Size" not in message
