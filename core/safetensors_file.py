"""Recognise a safetensors file by its content, and refuse pickles with a useful message.

A pickle (`.ckpt`, `.bin`, `.pt`, `.pth`) can run arbitrary code when loaded, so we never load
one. Suffixes are not trusted (uploads arrive as `/tmp/tmpXXXXfile`): the header is read.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from core.errors import UserError

PICKLE_SUFFIXES = {".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle"}
MAX_HEADER_BYTES = 100 * 1024 * 1024


def describe(path: Path) -> str:
    """What the file looks like: 'safetensors', 'pickle', or 'unknown'."""
    with Path(path).open("rb") as stream:
        head = stream.read(8)
        if len(head) == 8:
            (size,) = struct.unpack("<Q", head)
            if 2 <= size <= MAX_HEADER_BYTES:
                try:
                    header = json.loads(stream.read(size))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    header = None
                if isinstance(header, dict):
                    return "safetensors"
    if head[:1] == b"\x80" or zipfile.is_zipfile(path):
        return "pickle"
    return "unknown"


def require_safetensors(path: Path, *, label: str) -> Path:
    path = Path(path)
    kind = describe(path)
    if kind == "safetensors":
        return path
    if kind == "pickle" or path.suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(
            f"{label}: {path.name} is a pickle checkpoint (.ckpt/.bin/.pt), which can run code "
            "when loaded and is refused. Convert it to .safetensors first (for example with "
            "diffusers' scripts/convert_original_stable_diffusion_to_diffusers.py and "
            "`save_pretrained(..., safe_serialization=True)`)."
        )
    raise UserError(f"{label}: {path.name} is not a .safetensors file (unrecognised header)")
