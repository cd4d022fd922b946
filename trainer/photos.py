"""From an extracted archive to training photos, with optional per-photo captions.

Captions come from `captions.csv` (header `image_file,caption`; the file is matched as a path
relative to the CSV, then to the archive root, then as a bare name when that is unique; case
and Unicode form do not matter) or from `name.txt` beside `name.jpg`. A caption replaces
`instance_prompt` for its photo; where both exist, the CSV row wins.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from core.archive import ArchiveLimits, extract
from core.errors import UserError
from core.images import IMAGE_EXTENSIONS, is_image_name, open_rgb, unsupported_hint

log = logging.getLogger(__name__)
CAPTIONS_CSV = "captions.csv"
COLUMNS = ("image_file", "caption")


@dataclass(frozen=True)
class Photo:
    """One training photo: upright 8-bit RGB, named by its path inside the archive."""

    name: str
    image: Image.Image
    caption: str | None = None  # replaces instance_prompt for this photo

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Photo.name must name the file inside the archive")
        if not isinstance(self.image, Image.Image) or self.image.mode != "RGB":
            raise ValueError(f"Photo {self.name}: image must be an RGB PIL image")
        if self.caption is not None and not self.caption.strip():
            raise ValueError(f"Photo {self.name}: caption must be None or non-empty text")


def _nfc(text: str) -> str:
    """A name as written in a CSV or by macOS (NFD), in the form extraction gives it."""
    return unicodedata.normalize("NFC", text.replace("\\", "/"))


def _key(text: str) -> str:
    """How caption files are paired with photos: NFC, case-insensitive."""
    return _nfc(text).casefold()


def _stem(name: str) -> str:
    """`a/Cat` for `a/cat.JPG` and `a/CAT.txt`: what pairs a caption file with its photo."""
    return _key(str(PurePosixPath(name).with_suffix("")))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _caption(row: list[str], header: list[str], at: int, where: str) -> str:
    if at == len(header) - 1:  # the last column: unquoted commas belong to the caption
        return _one_line(",".join(row[at:]))
    if len(row) > len(header):
        raise UserError(
            f"{where} has {len(row)} fields but the header has {len(header)}: "
            "put captions that contain commas in double quotes"
        )
    return _one_line(row[at]) if at < len(row) else ""


def read_text(path: Path, shown: str, label: str) -> str:
    """UTF-8 (with or without a BOM), else cp1252, what spreadsheets on Windows write."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise UserError(
            f"{label}: {shown} line {line} is neither UTF-8 nor Windows-1252 text"
        ) from None
    log.info("%s: %s is not UTF-8 (line %d); read it as Windows-1252", label, shown, line)
    return text


def _csv_rows(path: Path, shown: str, label: str) -> list[tuple[int, str, str]]:
    """(line, image_file, caption) rows; a caption with unquoted commas is kept whole."""
    reader = csv.reader(io.StringIO(read_text(path, shown, label), newline=""), strict=True)
    try:
        header = [_key(column.strip()) for column in next(reader, [])]
        missing = [column for column in COLUMNS if column not in header]
        if missing:
            raise UserError(
                f"{label}: {shown} needs the header line image_file,caption "
                f"(missing: {', '.join(missing)})"
            )
        name_at, caption_at = header.index("image_file"), header.index("caption")
        rows = []
        for row in reader:
            if any(cell.strip() for cell in row):
                where = f"{label}: {shown} line {reader.line_num}"
                name = row[name_at].strip() if name_at < len(row) else ""
                caption = _caption(row, header, caption_at, where)
                rows.append((reader.line_num, name, caption))
        return rows
    except csv.Error as error:
        raise UserError(
            f"{label}: {shown} line {reader.line_num} is not valid CSV ({error}); "
            "expected lines of image_file,caption"
        ) from None


def _match(name: str, csv_dir: str, exact: dict[str, str], folded: dict[str, str]) -> str | None:
    """The photo a CSV row names: by path from the CSV or the root (exact, then in any case),
    else by file name when only one photo has it."""
    wanted = PurePosixPath(_nfc(name)).as_posix()
    candidates = [f"{csv_dir}/{wanted}" if csv_dir else wanted, wanted]
    for names, fold in ((exact, str), (folded, str.casefold)):
        for candidate in map(fold, candidates):
            if candidate in names:
                return names[candidate]
    bare = PurePosixPath(wanted).name.casefold()
    same_name = [n for n in exact if PurePosixPath(n).name.casefold() == bare]
    return same_name[0] if len(same_name) == 1 else None


def captions_from_csv(csv_files: list[str], root: Path, names: list[str], label: str):
    """Captions by photo name from every `captions.csv` in the archive."""
    exact = {_nfc(name): name for name in names}
    folded = {key.casefold(): name for key, name in exact.items()}
    captions: dict[str, str] = {}
    for shown in csv_files:
        parent = _nfc(str(PurePosixPath(shown).parent))
        csv_dir = "" if parent == "." else parent
        for line, name, caption in _csv_rows(root / shown, shown, label):
            photo = _match(name, csv_dir, exact, folded)
            where = f"{shown} line {line}"
            if photo is None:
                log.warning("%s: %s names %r, which is not a photo here", label, where, name)
            elif not caption:
                log.warning("%s: %s gives no caption for %s", label, where, name)
            else:
                if captions.get(photo, caption) != caption:
                    log.warning("%s: %s gives %s a second caption", label, where, photo)
                captions[photo] = caption
    return captions


def captions_from_text(text_files: list[str], root: Path, names: list[str], label: str):
    """Captions by photo name from `name.txt` files beside `name.jpg` (any case)."""
    texts = {_stem(t): t for t in text_files}
    captions = {}
    for name in names:
        text = texts.get(_stem(name))
        if text is None:
            continue
        caption = _one_line(read_text(root / text, text, label))
        if caption:
            captions[name] = caption
    return captions


def _sort_files(files: list[Path], root: Path, label: str):
    """Photo names, caption files and the rest, each logged once."""
    names = sorted(p.relative_to(root).as_posix() for p in files)
    photos = [n for n in names if is_image_name(n)]
    stems = {_stem(n) for n in photos}
    csvs = [n for n in names if PurePosixPath(n).name.lower() == CAPTIONS_CSV]
    texts = [n for n in names if n.lower().endswith(".txt") and _stem(n) in stems]
    for name in sorted(set(names) - set(photos) - set(csvs) - set(texts)):
        if hint := unsupported_hint(name):
            log.warning("%s: skipped %s (%s)", label, name, hint)
        else:
            log.info("%s: skipped %s (not an image)", label, name)
    return names, photos, csvs, texts


def _no_photos(label: str, names: list[str]) -> UserError:
    found = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    hints = sorted({hint for name in names if (hint := unsupported_hint(name))})
    return UserError(
        f"{label}: no usable images in the archive (found {len(names)} files: {found}); "
        f"supported: {', '.join(IMAGE_EXTENSIONS)} in any case"
        + "".join(f". {hint}" for hint in hints)
    )


def _open_photo(path: Path, name: str, label: str, resolution: int) -> Image.Image:
    image = open_rgb(path, label=label, shown=name, min_side=resolution)
    if min(image.size) < resolution:
        log.warning(
            "%s: %s is %dx%d, smaller than resolution %d: it will be upscaled",
            label,
            name,
            *image.size,
            resolution,
        )
    return image


def _warn_duplicates(root: Path, names: list[str], label: str) -> None:
    """The same photo twice weighs twice in training: say so (files of equal size are hashed)."""
    by_size: dict[int, list[str]] = {}
    for name in names:
        by_size.setdefault((root / name).stat().st_size, []).append(name)
    seen: dict[str, str] = {}
    for name in (n for group in by_size.values() if len(group) > 1 for n in group):
        digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
        if digest in seen:
            log.warning("%s: %s is the same file as %s", label, name, seen[digest])
        seen.setdefault(digest, name)


def collect(files: list[Path], root: Path, *, label: str, resolution: int) -> list[Photo]:
    """Photos (sorted by name) from files extracted under `root`; the rest is logged."""
    names, photo_names, csvs, texts = _sort_files(files, root, label)
    if not photo_names:
        raise _no_photos(label, names)
    captions = {
        **captions_from_text(texts, root, photo_names, label),
        **captions_from_csv(csvs, root, photo_names, label),
    }
    _warn_duplicates(root, photo_names, label)
    photos = [
        Photo(name, _open_photo(root / name, name, label, resolution), captions.get(name))
        for name in photo_names
    ]
    log.info("%s: %d photos, %d with their own caption", label, len(photos), len(captions))
    return photos


def load_archive(
    archive: Path,
    workdir: Path,
    *,
    label: str,
    resolution: int,
    limits: ArchiveLimits = ArchiveLimits(),
) -> list[Photo]:
    """Extract `archive` into `workdir`, load its photos into memory, and remove `workdir`.

    Nothing extracted outlives this call, whether it succeeds or fails.
    """
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        files = extract(archive, workdir, label=label, limits=limits)
        return collect(files, workdir, label=label, resolution=resolution)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
