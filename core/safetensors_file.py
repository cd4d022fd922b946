"""Recognise a safetensors file by its content, and refuse pickles with a useful message.

A pickle (`.ckpt`, `.bin`, `.pt`, `.pth`) can run arbitrary code when loaded, so we never load
one. Names are not trusted (uploads arrive as `/tmp/tmpXXXXfile` or `…file.bin`): the bytes
are read, and a file is called a pickle only when its bytes are one.

A safetensors file is 8 bytes of little-endian header length, a JSON header naming every
tensor with its byte range, then the tensor data; `read_header` checks all three, so a
truncated download is caught here, by name, and not halfway through loading.
"""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

# The one list of pickle file suffixes, for messages and for weights folders (core/weights.py).
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")
MAX_HEADER_BYTES = 100 * 1024 * 1024
PICKLE_PROTOCOL = b"\x80"  # the first byte of a pickle of protocol 2 or later


class NotSafetensorsError(UserError):
    pass


@dataclass(frozen=True)
class Header:
    """What a safetensors header says: tensor names and how many data bytes must follow."""

    keys: tuple[str, ...]
    data_bytes: int


def _parse(path: Path) -> tuple[Header | None, str]:
    """(header, why not) from the first bytes of `path`."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(8)
        if len(head) < 8:
            return None, "empty" if not head else "too short"
        (length,) = struct.unpack("<Q", head)
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            return None, "bad header length"
        try:
            header = json.loads(stream.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, "bad header"
    if not isinstance(header, dict):
        return None, "bad header"
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    try:
        end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return None, "bad header"
    return Header(tuple(tensors), end), ""


def _torch_zip(path: Path) -> bool:
    """A torch.save archive: a zip with `<name>/data.pkl` inside."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def describe(path: Path) -> str:
    """What the file is: 'safetensors', 'pickle', 'zip', 'empty' or 'unknown'."""
    path = Path(path)
    header, why = _parse(path)
    if header is not None:
        return "safetensors"
    if why == "empty":
        return "empty"
    with path.open("rb") as stream:
        first = stream.read(1)
    if first == PICKLE_PROTOCOL or _torch_zip(path):
        return "pickle"
    return "zip" if zipfile.is_zipfile(path) else "unknown"


def _problem(kind: str) -> str:
    """What is wrong with a file of `kind`, as the rest of a sentence about it."""
    if kind == "pickle":
        return (
            "is a pickle checkpoint (.ckpt/.bin/.pt), which can run code when loaded and is "
            "refused. Convert it to .safetensors first (for example with diffusers' "
            "scripts/convert_original_stable_diffusion_to_diffusers.py and "
            "`save_pretrained(..., safe_serialization=True)`)."
        )
    what = {
        "zip": "a zip archive (photos?), not a model checkpoint",
        "empty": "empty (0 bytes; if you sent a data URI, check that it is complete base64)",
    }.get(kind, "not a .safetensors file (its first bytes are no safetensors header)")
    return f"is {what}; expected a .safetensors checkpoint"


def inspect(path: Path) -> tuple[Header | None, str]:
    """(header, "") for a complete safetensors file, else (None, what is wrong: "is …")."""
    path = Path(path)
    header, _ = _parse(path)
    if header is None:
        return None, _problem(describe(path))
    stored = path.stat().st_size - 8 - _header_length(path)
    if stored < header.data_bytes:
        return None, (
            f"is truncated: its header describes {header.data_bytes:,} bytes of tensors but "
            f"only {stored:,} follow (an interrupted upload or download?)"
        )
    return header, ""


def read_header(path: Path, *, label: str) -> Header:
    """The header of a complete safetensors file, or an error that says what the file is."""
    header, problem = inspect(path)
    if header is None:
        raise NotSafetensorsError(f"{label}: {Path(path).name} {problem}")
    return header


def _header_length(path: Path) -> int:
    with path.open("rb") as stream:
        return struct.unpack("<Q", stream.read(8))[0]


def require_safetensors(path: Path, *, label: str) -> Path:
    read_header(path, label=label)
    return Path(path)
