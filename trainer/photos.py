"""From an extracted archive to training photos, with optional per-photo captions.

Captions come from `captions.csv` (header `image_file,caption`; the file name is matched as a
path relative to the CSV, then to the archive root, then as a bare name when that is unique) or
from `name.txt` beside `name.jpg`. A caption replaces `instance_prompt` for its photo.
"""

from __future__ import annotations

import csv
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from core.errors import UserError
from core.images import IMAGE_EXTENSIONS, is_image_name, open_rgb
from trainer.archive import ArchiveLimits, extract

log = logging.getLogger(__name__)
CAPTIONS_CSV = "captions.csv"


@dataclass(frozen=True)
class Photo:
    name: str  # path inside the archive, for messages
    image: Image.Image
    caption: str | None = None


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _csv_rows(path: Path, root: Path, label: str) -> list[tuple[int, str, str]]:
    shown = _relative(path, root)
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            missing = {"image_file", "caption"} - set(reader.fieldnames or [])
            if missing:
                raise UserError(
                    f"{label}: {shown} needs the columns image_file,caption "
                    f"(missing: {', '.join(sorted(missing))})"
                )
            return [
                (reader.line_num, row["image_file"] or "", row["caption"] or "") for row in reader
            ]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{label}: {shown} is not a readable CSV ({error})") from None


def _match(name: str, csv_dir: PurePosixPath, images: dict[str, Path]) -> str | None:
    for candidate in (str(csv_dir / name) if str(csv_dir) != "." else name, name):
        candidate = PurePosixPath(candidate).as_posix()
        if candidate in images:
            return candidate
    same_name = [key for key in images if PurePosixPath(key).name == PurePosixPath(name).name]
    return same_name[0] if len(same_name) == 1 else None


def captions_from_csv(files: list[Path], root: Path, images: dict[str, Path], label: str):
    captions: dict[str, str] = {}
    for path in files:
        if path.name.lower() != CAPTIONS_CSV:
            continue
        csv_dir = PurePosixPath(_relative(path, root)).parent
        for line, name, caption in _csv_rows(path, root, label):
            key = _match(name.strip(), csv_dir, images)
            if key is None:
                log.warning(
                    "%s: %s line %d names %r, which is not an image in the archive",
                    label,
                    _relative(path, root),
                    line,
                    name,
                )
            elif caption.strip():
                captions[key] = caption.strip()
    return captions


def captions_from_text(images: dict[str, Path]) -> dict[str, str]:
    captions = {}
    for key, path in images.items():
        text = path.with_suffix(".txt")
        if text.is_file():
            caption = text.read_text(encoding="utf-8", errors="replace").strip()
            if caption:
                captions[key] = caption
    return captions


def collect(files: list[Path], root: Path, *, label: str, resolution: int) -> list[Photo]:
    """Photos (sorted by name) from extracted files; non-images are skipped with a log line."""
    images = {_relative(p, root): p for p in sorted(files) if is_image_name(p.name)}
    captions = {**captions_from_text(images), **captions_from_csv(files, root, images, label)}
    caption_files = {p.with_suffix(".txt") for p in images.values()}
    for path in sorted(files):
        if (
            not is_image_name(path.name)
            and path not in caption_files
            and path.name.lower() != CAPTIONS_CSV
        ):
            log.info("%s: skipped %s (not an image)", label, _relative(path, root))
    if not images:
        found = ", ".join(sorted(_relative(p, root) for p in files)[:10])
        raise UserError(
            f"{label}: no usable images in the archive (found {len(files)} files: "
            f"{found}); supported: {', '.join(IMAGE_EXTENSIONS)}"
        )
    photos = []
    for key, path in images.items():
        image = open_rgb(path, label=label, shown=key)
        if min(image.size) < resolution:
            log.warning(
                "%s: %s is %dx%d, smaller than resolution %d: it will be upscaled",
                label,
                key,
                *image.size,
                resolution,
            )
        photos.append(Photo(key, image, captions.get(key)))
    return photos


def load_archive(
    archive: Path,
    workdir: Path,
    *,
    label: str,
    resolution: int,
    limits: ArchiveLimits = ArchiveLimits(),
) -> list[Photo]:
    """Extract `archive` into `workdir` (replacing what was there) and load its photos."""
    shutil.rmtree(workdir, ignore_errors=True)
    files = extract(archive, workdir, label=label, limits=limits)
    return collect(files, workdir, label=label, resolution=resolution)
