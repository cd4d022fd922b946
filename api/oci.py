"""OCI image pieces: deterministic tar layers, streamed; image configs and manifests.

A layer is produced as a stream of bytes (a tar header, the file's bytes, padding, ...), so a
multi-gigabyte UNet goes from disk (or from output.zip) to the registry in one pass. Entries are
sorted and carry no owners or times, so the same files always give the same digest and a layer
pushed twice is stored once.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO

from api.registry import MANIFEST

TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
CHUNK = 4 * 1024 * 1024
BLOCK = 512


@dataclass(frozen=True)
class Entry:
    name: str  # the path inside the image, relative (src/weights/unet/...)
    size: int
    mode: int
    open: Callable[[], IO[bytes]] | None  # None: a directory


def _header(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.mode = entry.mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.open is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = entry.size
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def tar_stream(entries: list[Entry]) -> Iterator[bytes]:
    """A tar archive of `entries`, in order, as chunks."""
    for entry in entries:
        yield _header(entry)
        if entry.open is None:
            continue
        written = 0
        with entry.open() as source:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                yield chunk
        if written != entry.size:
            raise OSError(f"{entry.name} changed while it was read ({written} != {entry.size})")
        yield b"\0" * (-entry.size % BLOCK)
    yield b"\0" * (BLOCK * 2)


def _parents(name: str, seen: set[str]) -> list[Entry]:
    out = []
    for parent in reversed(PurePosixPath(name).parents):
        text = str(parent)
        if text != "." and text not in seen:
            seen.add(text)
            out.append(Entry(text + "/", 0, 0o755, None))
    return out


def directory_entries(root: Path, prefix: str, skip: Callable[[Path], bool] = lambda p: False):
    """Every file under `root` as `prefix/relative`, parents first; links are not followed."""
    root = Path(root)
    seen: set[str] = set()
    entries: list[Entry] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if skip(relative) or path.is_symlink() or not path.is_file():
            continue
        name = f"{prefix}/{relative.as_posix()}"
        entries += _parents(name, seen)
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        entries.append(Entry(name, path.stat().st_size, mode, lambda p=path: p.open("rb")))
    return entries


def _stored_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    """A stored member's bytes read straight from the file: no copy through zipfile's buffers.

    Its CRC is still checked (zlib.crc32 as the bytes go by), so a damaged archive is an error.
    """
    path = archive.filename

    class Raw:
        def __enter__(self):
            self.file = Path(path).open("rb")
            self.file.seek(info.header_offset)
            header = self.file.read(30)
            name_length, extra_length = (
                int.from_bytes(header[26:28], "little"),
                int.from_bytes(header[28:30], "little"),
            )
            self.file.seek(info.header_offset + 30 + name_length + extra_length)
            self.left, self.crc = info.file_size, 0
            return self

        def read(self, size: int) -> bytes:
            chunk = self.file.read(min(size, self.left))
            self.left -= len(chunk)
            self.crc = zlib.crc32(chunk, self.crc)
            if self.left == 0 and self.crc != info.CRC:
                raise zipfile.BadZipFile(f"{info.filename}: CRC does not match")
            return chunk

        def __exit__(self, *exc):
            self.file.close()

    return Raw


def zip_entries(archive: zipfile.ZipFile, prefix: str) -> list[Entry]:
    """The members of a zip as tar entries (stored members are read as they are)."""
    seen: set[str] = set()
    entries: list[Entry] = []
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        name = PurePosixPath(info.filename)
        if info.is_dir() or name.is_absolute() or ".." in name.parts:
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symlink member
            continue
        full = f"{prefix}/{name.as_posix()}"
        entries += _parents(full, seen)
        if info.compress_type == zipfile.ZIP_STORED and archive.filename:
            opener = _stored_reader(archive, info)
        else:
            opener = lambda i=info: archive.open(i)  # noqa: E731
        entries.append(Entry(full, info.file_size, 0o644, opener))
    return entries


class Digests:
    """Feeds a stream through: the digest of what passes (diff_id) and its size."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.hash, self.size = chunks, hashlib.sha256(), 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def gzip_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Deterministic gzip (no name, no time) of a stream: small code layers only."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


EPOCH = "1970-01-01T00:00:00Z"  # pushes are reproducible: the same context gives the same digest


def image_config(
    env: dict[str, str], labels: dict[str, str], diff_ids: list[str], history: list[dict]
) -> dict:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH,
        "config": {
            "Env": [f"{key}={value}" for key, value in env.items()],
            "WorkingDir": "/src",
            "Cmd": ["python", "-m", "cog.server.http"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }


def manifest(config: dict, layers: list[dict], annotations: dict | None = None) -> dict:
    out = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layers}
    if annotations:
        out["annotations"] = annotations
    return out


def descriptor(media_type: str, digest: str, size: int, **annotations: str) -> dict:
    out = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        out["annotations"] = annotations
    return out


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
