"""Safe extraction of the photos archive: zip or tar (plain, gz, bz2, xz), known by content.

Uploads arrive as `/tmp/tmpXXXXfile` without a reliable suffix, so the format is read from the
bytes. Extraction never leaves `destination`: absolute and `..` paths are refused, links,
devices and FIFOs are skipped (never followed or created), and the number of files and the bytes
actually written (not the sizes the headers claim) are bounded. Folders are kept, so two
`img.jpg` in different folders both survive. `__MACOSX/` and dotfiles are skipped with a log line.
"""

from __future__ import annotations

import logging
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.errors import UserError

log = logging.getLogger(__name__)
ALLOWED = ".zip, or .tar (plain, .gz, .bz2 or .xz)"
CHUNK = 1 << 20
MAGIC = [
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"RIFF", "a RIFF file (WebP image, WAV audio…)"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"\x1f\x8b", "a gzip file that does not contain a tar archive"),
]


class ArchiveError(UserError):
    pass


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = 10_000
    max_total_bytes: int = 4 * 2**30
    max_member_bytes: int = 1 * 2**30

    def __post_init__(self) -> None:
        for name in ("max_files", "max_total_bytes", "max_member_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ArchiveLimits.{name} must be positive")


@dataclass
class Member:
    name: str
    kind: str  # "file", "dir", "link", "special"
    open: callable  # () -> binary stream, for files


def describe(path: Path) -> str:
    head = Path(path).read_bytes()[:512] if Path(path).stat().st_size else b""
    if not head:
        return "an empty file"
    for magic, what in MAGIC:
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unrecognised binary data"


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no type
        if info.is_dir():
            kind = "dir"
        elif file_type == stat.S_IFLNK:
            kind = "link"
        elif file_type in (0, stat.S_IFREG):
            kind = "file"
        else:
            kind = "special"
        yield Member(info.filename, kind, lambda info=info: archive.open(info))


def _tar_members(archive: tarfile.TarFile) -> Iterator[Member]:
    for info in archive:
        if info.isdir():
            kind = "dir"
        elif info.issym() or info.islnk():
            kind = "link"
        elif info.isfile():
            kind = "file"
        else:
            kind = "special"
        yield Member(info.name, kind, lambda info=info: archive.extractfile(info))


def _open_archive(path: Path, label: str):
    with Path(path).open("rb") as stream:
        head = stream.read(4)
    if head in (b"PK\x03\x04", b"PK\x05\x06") and zipfile.is_zipfile(path):
        return zipfile.ZipFile(path), _zip_members
    try:
        return tarfile.open(path, mode="r:*"), _tar_members
    except (tarfile.TarError, EOFError, OSError):
        pass
    raise ArchiveError(
        f"{label}: {Path(path).name} is not an archive (it looks like {describe(path)}); "
        f"expected a {ALLOWED} of photos"
    )


def safe_relative(name: str, label: str) -> PurePosixPath | None:
    """The member's path inside the archive, or an error when it would escape it."""
    normal = name.replace("\\", "/")
    path = PurePosixPath(normal)
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":") or "\0" in normal:
        raise ArchiveError(f"{label}: refused: member {name!r} has an absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"{label}: refused: member {name!r} points outside the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _skip_reason(relative: PurePosixPath) -> str | None:
    if relative.parts[0] == "__MACOSX":
        return "macOS metadata"
    if any(part.startswith(".") for part in relative.parts):
        return "hidden file"
    return None


def _copy(source: BinaryIO, target: Path, budget: int, member_limit: int, name: str, label: str):
    written = 0
    with target.open("xb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > member_limit:
                raise ArchiveError(f"{label}: {name} unpacks to more than {member_limit:,} bytes")
            if written > budget:
                raise ArchiveError(
                    f"{label}: stopped at {name}: the archive unpacks to more than its size limit"
                )
            out.write(chunk)
    return written


def extract(
    archive: Path, destination: Path, *, label: str, limits: ArchiveLimits = ArchiveLimits()
) -> list[Path]:
    """Extract the regular files of `archive` under `destination`; returns their paths."""
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise ValueError(f"{destination} must be empty")
    destination.mkdir(parents=True, exist_ok=True)
    handle, members = _open_archive(archive, label)
    try:
        with handle:
            files = _extract_members(members(handle), destination, label, limits)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    if not files:
        shutil.rmtree(destination, ignore_errors=True)
        raise ArchiveError(f"{label}: the archive contains no files")
    return files


def _extract_members(members, destination: Path, label: str, limits: ArchiveLimits):
    files: list[Path] = []
    budget = limits.max_total_bytes
    root = destination.resolve()
    for member in members:
        relative = safe_relative(member.name, label)
        if relative is None or member.kind == "dir":
            continue
        if member.kind in ("link", "special"):
            log.info(
                "%s: skipped %s (a %s is never followed)",
                label,
                relative,
                "link" if member.kind == "link" else "special file",
            )
            continue
        if reason := _skip_reason(relative):
            log.info("%s: skipped %s (%s)", label, relative, reason)
            continue
        if len(files) >= limits.max_files:
            raise ArchiveError(f"{label}: the archive has more than {limits.max_files:,} files")
        target = destination / relative
        if not target.resolve().is_relative_to(root):
            raise ArchiveError(f"{label}: refused: member {member.name!r} leaves the archive")
        if target.exists():
            log.info("%s: skipped a second copy of %s", label, relative)
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with member.open() as source:
                budget -= _copy(
                    source, target, budget, limits.max_member_bytes, str(relative), label
                )
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
            raise ArchiveError(f"{label}: cannot unpack {relative}: {error}") from None
        files.append(target)
    return files
