"""Opening user images: the trainer's photos and the templates' `image`, `mask`, `control_image`.

Every image comes out 8-bit RGB (or L for masks), upright (EXIF orientation applied) and fully
decoded, so a truncated file fails here, with its name, and not halfway through a run. Pillow's
decompression-bomb guard stays on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import UserError

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".jfif",
    ".jpe",
)
WHITE = (255, 255, 255)


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale scaled to 8 bits by their range (not clipped at 255)."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and array.max() > 255):
        top = 65535.0
    elif image.mode == "F" and array.max() <= 1.0:
        top = 1.0
    else:
        top = max(255.0, float(array.max()))
    scaled = np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited on white."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _open(path: Path, label: str, shown: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"{label}: {shown} is too large to decode safely (more than "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels; a decompression bomb?)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{label}: {shown} is not a readable image ({error})") from None


def open_rgb(path: Path, *, label: str, shown: str | None = None) -> Image.Image:
    """An upright 8-bit RGB image; a `UserError` naming `label` and the file otherwise."""
    return to_rgb(_open(Path(path), label, shown or Path(path).name))


def open_mask(path: Path, *, label: str, shown: str | None = None) -> Image.Image:
    """An inpainting mask as 8-bit greyscale: white is repainted, black is kept."""
    image = _open(Path(path), label, shown or Path(path).name)
    if image.mode in ("RGBA", "LA", "PA", "P"):
        image = to_rgb(image)
    if image.mode.startswith("I") or image.mode == "F":
        return _to_8bit(image)
    return image.convert("L")
