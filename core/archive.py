"""Safe extraction of an uploaded archive: zip or tar (plain, gz, bz2, xz), known by content.

The trainer unpacks photos with it, the templates an adapter output.zip given as `lora_weights`.

Uploads arrive as `/tmp/tmpXXXXfile` without a reliable suffix, so the format is read from the
bytes. Extraction never leaves `destination`: absolute and `..` paths are refused, links,
devices and FIFOs are skipped (never followed or created), and the number of entries and the
bytes actually written (not the sizes the headers claim) are bounded. Folders are kept, so two
`img.jpg` in different folders both survive. `__MACOSX/` and dotfiles are skipped with a log line.
"""

from __future__ import annotations

import codecs
import errno
import logging
import lzma
import shutil
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from core.errors import UserError

log = logging.getLogger(__name__)
ALLOWED = ".zip, or .tar (plain, .gz, .bz2 or .xz)"
CHUNK = 1 << 20
MAX_NAME_BYTES = 255  # per file or folder name, as on every common file system
SKIP_LOG_LINES = 20  # skipped entries logged one by one; the rest are counted in one line
# Looked at only once the file is known not to be an archive, to say what it is instead.
MAGIC = [
    (b"PK\x03\x04", "a damaged or truncated zip archive"),
    (b"PK\x05\x06", "a damaged zip archive"),
    (b"\x1f\x8b", "a gzip file without a readable tar archive inside"),
    (b"BZh", "a bzip2 file without a readable tar archive inside"),
    (b"\xfd7zXZ\x00", "an xz file without a readable tar archive inside"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"RIFF", "a RIFF file (WebP image, WAV audio…)"),
]
# What a damaged archive raises while it is read.
UNPACK_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,  # a zip compression method Python lacks (Deflate64, AES…)
)
Kind = Literal["file", "dir", "link", "special", "encrypted"]


class ArchiveError(UserError):
    """The archive cannot be used: the message names it or its member, and why."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what one archive may unpack to (generous for 5-1000 photos)."""

    max_files: int = 10_000  # entries of any kind: files, folders, skipped links and dotfiles
    max_total_bytes: int = 4 * 2**30
    max_member_bytes: int = 1 * 2**30
    # Photos barely compress: an archive unpacking to 100x its size is a bomb, not photos.
    max_expansion: int = 100
    min_allowance: int = 64 * 2**20  # what even a tiny upload may unpack to

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ArchiveLimits.{spec.name} must be a positive int, not {value!r}")

    def allowance(self, archive_bytes: int) -> int:
        """Bytes an archive of `archive_bytes` may unpack to, counted as written."""
        relative = max(self.min_allowance, self.max_expansion * archive_bytes)
        return min(self.max_total_bytes, relative)


@dataclass(frozen=True)
class Member:
    name: str
    kind: Kind
    size: int  # as the header claims: used only to stop early, never trusted
    open: Callable[[], IO[bytes]]
    compression: str = "its compression"  # for messages


def describe(path: Path) -> str:
    """What a file that is not an archive looks like, from its first bytes."""
    with Path(path).open("rb") as stream:
        head = stream.read(512)
    if not head:
        return (
            "an empty file: 0 bytes arrived (if you sent a data URI, check that its base64 is "
            "complete)"
        )
    for magic, what in MAGIC:
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "a HEIC image or MP4 video"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return "unrecognised binary data"
    if text.lstrip().lower().startswith(("<!doctype html", "<html")):
        return "an HTML web page (a share link that leads to a page, not to the file?)"
    return "text" if "\0" not in text else "unrecognised binary data"


def _zip_kind(info: zipfile.ZipInfo) -> Kind:
    file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no type
    if info.is_dir() or info.filename.endswith("\\") or file_type == stat.S_IFDIR:
        return "dir"
    if file_type == stat.S_IFLNK:
        return "link"
    if file_type not in (0, stat.S_IFREG):
        return "special"
    return "encrypted" if info.flag_bits & 0x1 else "file"


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        method = zipfile.compressor_names.get(info.compress_type, f"method {info.compress_type}")
        yield Member(
            info.filename,
            _zip_kind(info),
            info.file_size,
            lambda info=info: archive.open(info),
            f"{method} compression",
        )


def _tar_kind(info: tarfile.TarInfo) -> Kind:
    if info.isdir():
        return "dir"
    if info.issym() or info.islnk():
        return "link"
    return "file" if info.isfile() else "special"


def _tar_members(archive: tarfile.TarFile) -> Iterator[Member]:
    for info in archive:
        yield Member(info.name, _tar_kind(info), info.size, lambda i=info: archive.extractfile(i))


def _open_archive(
    path: Path, label: str, limits: ArchiveLimits, contents: str
) -> tuple[zipfile.ZipFile | tarfile.TarFile, Callable[..., Iterator[Member]]]:
    with Path(path).open("rb") as stream:
        head = stream.read(4)
    try:
        if head in (b"PK\x03\x04", b"PK\x05\x06") and zipfile.is_zipfile(path):
            archive = zipfile.ZipFile(path)
            if len(archive.infolist()) > limits.max_files:
                archive.close()
                raise ArchiveError(_too_many(label, limits))
            return archive, _zip_members
        return tarfile.open(path, mode="r:*"), _tar_members
    except UNPACK_ERRORS:
        pass
    raise ArchiveError(
        f"{label}: {Path(path).name} is not an archive (it looks like {describe(path)}); "
        f"expected a {ALLOWED} of {contents}"
    )


def safe_relative(name: str, label: str) -> PurePosixPath | None:
    """The member's path inside the archive (NFC, `/`-separated), or an error if it escapes."""
    normal = unicodedata.normalize("NFC", name.replace("\\", "/"))
    drive = len(normal) > 1 and normal[0].isalpha() and normal[1] == ":"
    shown = repr(shown_name(name))
    if normal.startswith("/") or drive or "\0" in normal:
        raise ArchiveError(f"{label}: refused: member {shown} has an absolute path")
    path = PurePosixPath(normal)
    if ".." in path.parts:
        raise ArchiveError(f"{label}: refused: member {shown} points outside the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    longest = max((len(p.encode()) for p in parts), default=0)
    if longest > MAX_NAME_BYTES:
        raise ArchiveError(
            f"{label}: member {shown} has a file or folder name of {longest:,} bytes; "
            f"at most {MAX_NAME_BYTES} are allowed"
        )
    return PurePosixPath(*parts) if parts else None


def _skip_reason(relative: PurePosixPath) -> str | None:
    if relative.parts[0] == "__MACOSX":
        return "macOS metadata"
    if any(part.startswith(".") for part in relative.parts):
        return "hidden file"
    return None


def _too_many(label: str, limits: ArchiveLimits) -> str:
    return f"{label}: the archive has more than {limits.max_files:,} entries (files and folders)"


def _too_big(label: str, name: str, progress: _Progress) -> str:
    return (
        f"{label}: stopped at {shown_name(name)}: the archive unpacks to more than "
        f"{progress.allowed:,} bytes (at most {progress.limits.max_expansion} times its own "
        f"size, and {progress.limits.max_total_bytes:,} bytes in all)"
    )


def shown_name(name: str, limit: int = 80) -> str:
    """A member name for a message: whole when short, else its start and end."""
    name = str(name)
    return name if len(name) <= limit else f"{name[: limit // 2]}…{name[-limit // 2 :]}"


def _reason(error: BaseException) -> str:
    """Why reading failed, in words: never the server path an OSError carries."""
    if isinstance(error, OSError) and error.errno == errno.ENAMETOOLONG:
        return "a file or folder name in it is too long (at most 255 bytes per name)"
    if isinstance(error, OSError) and error.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return "a file and a folder in it have the same name"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or "unreadable data"


def _copy(source: IO[bytes], target: Path, name: str, label: str, progress: _Progress) -> int:
    """Stream one member to `target`, counting the bytes really written."""
    written, most = 0, progress.limits.max_member_bytes
    with target.open("xb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > most:
                raise ArchiveError(
                    f"{label}: {shown_name(name)} unpacks to more than {most:,} bytes"
                )
            if written > progress.budget:
                raise ArchiveError(_too_big(label, name, progress))
            out.write(chunk)
    return written


def extract(
    archive: Path,
    destination: Path,
    *,
    label: str,
    limits: ArchiveLimits = ArchiveLimits(),
    contents: str = "photos",
) -> list[Path]:
    """Extract the regular files of `archive` under `destination`; returns their paths.

    `contents` says what the archive should hold, for the message when it is no archive.

    `destination` must not exist or be empty; on any error it is removed again.
    """
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise ValueError(f"{destination} must be empty")
    handle, members = _open_archive(archive, label, limits, contents)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with handle:
            allowed = limits.allowance(Path(archive).stat().st_size)
            progress = _Progress(limits=limits, allowed=allowed, budget=allowed)
            files = _extract_members(members(handle), destination, label, progress)
        progress.log_summary(label)
        if not files:
            skipped = [shown_name(n) for n in progress.skipped[:5]]
            also = f" (only {', '.join(skipped)}, skipped)" if skipped else ""
            raise ArchiveError(f"{label}: the archive contains no files{also}")
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return files


@dataclass
class _Progress:
    limits: ArchiveLimits
    allowed: int  # bytes this archive may unpack to
    budget: int  # bytes still allowed
    entries: int = 0
    last: str | None = None  # the last member read, for messages
    skipped: list[str] = field(default_factory=list)
    unlogged: Counter = field(default_factory=Counter)  # skips past SKIP_LOG_LINES, by reason

    def skip(self, label: str, relative: PurePosixPath, why: str) -> None:
        if len(self.skipped) < SKIP_LOG_LINES:
            log.info("%s: skipped %s (%s)", label, shown_name(relative), why)
        else:
            self.unlogged[why] += 1
        self.skipped.append(str(relative))

    def log_summary(self, label: str) -> None:
        if self.unlogged:
            reasons = "; ".join(f"{why}: {n:,}" for why, n in self.unlogged.most_common())
            log.info(
                "%s: skipped %s more entries (%s)", label, f"{self.unlogged.total():,}", reasons
            )


def _extract_members(members, destination: Path, label: str, progress: _Progress) -> list[Path]:
    files: list[Path] = []
    try:
        for member in members:
            progress.entries += 1
            if progress.entries > progress.limits.max_files:
                raise ArchiveError(_too_many(label, progress.limits))
            target = _place(member, destination, label, progress)
            if target is not None:
                files.append(target)
            progress.last = member.name
    except UNPACK_ERRORS as error:
        after = f" after {shown_name(progress.last)}" if progress.last else ""
        raise ArchiveError(
            f"{label}: the archive is damaged or truncated (reading stopped{after}: "
            f"{_reason(error)})"
        ) from None
    return files


def _skip(member: Member, relative: PurePosixPath, label: str, progress: _Progress) -> bool:
    """Log and count a member that is not extracted; True when it is skipped."""
    if member.kind == "encrypted":
        raise ArchiveError(
            f"{label}: {shown_name(relative)} is encrypted; upload an archive without a password"
        )
    why = {"link": "a link is never followed", "special": "not a regular file"}.get(member.kind)
    if not (why := why or _skip_reason(relative)):
        return False
    progress.skip(label, relative, why)
    _charge(member, relative, label, progress)
    return True


def _charge(member: Member, relative: PurePosixPath, label: str, progress: _Progress) -> None:
    """A tar is read through every member, skipped or not: that work is bounded too."""
    progress.budget -= max(member.size, 0)
    if progress.budget < 0:
        raise ArchiveError(_too_big(label, str(relative), progress))


def _place(member: Member, destination: Path, label: str, progress: _Progress) -> Path | None:
    """Write one member under `destination`, or log why not; returns the file written."""
    relative = safe_relative(member.name, label)
    if relative is None or member.kind == "dir" or _skip(member, relative, label, progress):
        return None
    shown = shown_name(relative)
    try:
        return _write(member, destination, relative, label, progress)
    except NotImplementedError:
        raise ArchiveError(
            f"{label}: cannot unpack {shown}: it uses {member.compression}, which is not "
            "supported; re-create the archive with standard zip (deflate) or tar compression"
        ) from None
    except UNPACK_ERRORS as error:
        raise ArchiveError(f"{label}: cannot unpack {shown}: {_reason(error)}") from None


def _write(
    member: Member, destination: Path, relative: PurePosixPath, label: str, progress: _Progress
) -> Path | None:
    target = destination / relative
    if not target.resolve().is_relative_to(destination.resolve()):
        raise ArchiveError(
            f"{label}: refused: member {shown_name(member.name)!r} leaves the archive"
        )
    if target.exists():
        progress.skip(label, relative, "a second copy")
        _charge(member, relative, label, progress)
        return None
    if member.size > progress.budget:  # the header already says it will not fit
        raise ArchiveError(_too_big(label, str(relative), progress))
    target.parent.mkdir(parents=True, exist_ok=True)
    with member.open() as source:
        progress.budget -= _copy(source, target, str(relative), label, progress)
    return target
