"""Opening user images: the trainer's photos and the templates' `image`, `mask`, `control_image`.

Every image comes out 8-bit RGB (or L for masks), upright (EXIF orientation applied), in sRGB
(an embedded ICC profile such as Display P3 or a CMYK press profile is honoured) and fully
decoded, so a truncated file fails here, with its name, and not halfway through a run. Pillow's
decompression-bomb guard stays on.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError, features

from core.errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
) + ((".avif",) if features.check("avif") else ())

# Photo formats people upload that Pillow cannot decode, with what to do instead.
_EXPORT_AS_JPEG = "export them as JPEG or PNG first"
UNSUPPORTED_FORMATS = {
    ".heic": f"HEIC (iPhone) photos are not supported: {_EXPORT_AS_JPEG}",
    ".heif": f"HEIF photos are not supported: {_EXPORT_AS_JPEG}",
    **{
        suffix: f"camera RAW files are not supported: {_EXPORT_AS_JPEG}"
        for suffix in (".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf")
    },
}
# What Pillow raises on damaged input; the try blocks below hold only Pillow calls.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)
WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def is_image_name(name: str) -> bool:
    """Whether the file name has an image extension, whatever its case (`IMG_6003.JPG`)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def unsupported_hint(name: str) -> str | None:
    """Why a photo-like file (HEIC, camera RAW) cannot be used, or None."""
    return UNSUPPORTED_FORMATS.get(Path(name).suffix.lower())


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit and float greyscale to 8 bits, scaled by their range (never clipped at 255)."""
    array = np.asarray(image, dtype=np.float64)
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low < 0.0 or (image.mode == "F" and high > 1.0) or high > 65535.0:
        top = high  # signed, out-of-range or unscaled float: stretch what is there
    elif image.mode == "F":
        low, top = 0.0, 1.0  # float images in [0, 1]
    elif high <= 255.0 and not image.mode.startswith("I;16"):
        low, top = 0.0, 255.0  # 8-bit values in a wider container
    else:
        low, top = 0.0, 65535.0  # 16-bit: the type's range, so a dark scan stays dark
    scaled = (array - low) / max(top - low, 1e-12) * 255.0
    return Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8), mode="L")


def _to_srgb(image: Image.Image, shown: str) -> Image.Image:
    """Apply an embedded ICC profile; a profile that cannot be used leaves colours as stored."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        output = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
        log.warning("%s: ignored an unusable colour profile (%s)", shown, error)
        return image
    converted.info = {k: v for k, v in image.info.items() if k != "icc_profile"}
    return converted


def to_rgb(
    image: Image.Image, background: tuple[int, int, int] = WHITE, *, shown: str = "image"
) -> Image.Image:
    """Any Pillow mode -> 8-bit sRGB; transparency is composited on `background`."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit(image)
    image = _to_srgb(image, shown)
    if "transparency" in image.info and image.mode in ("1", "L", "RGB"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(flat, rgba).convert("RGB")
    return image.convert("RGB")


def _upright(image: Image.Image, shown: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as error:  # broken EXIF: the pixels are still good
        log.warning("%s: ignored unreadable EXIF orientation (%s)", shown, error)
        return image.copy()


def _open(path: Path, label: str, shown: str, min_side: int | None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if min_side:
                    image.draft(None, (min_side, min_side))  # JPEG: decode at a smaller scale
                image.load()
                return _upright(image, shown)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"{label}: {shown} is too large to decode safely (more than "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels; a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise UserError(
            f"{label}: {shown} is not a readable image (unknown or damaged format; "
            f"allowed: {', '.join(IMAGE_EXTENSIONS)})"
        ) from None
    except _DECODE_ERRORS as error:
        raise UserError(f"{label}: {shown} is not a readable image ({error})") from None


def _convert(image: Image.Image, label: str, shown: str, convert) -> Image.Image:
    try:
        return convert(image, shown=shown)
    except _DECODE_ERRORS as error:
        raise UserError(
            f"{label}: {shown} has colour mode {image.mode}, which cannot be converted ({error})"
        ) from None


def open_rgb(
    path: Path, *, label: str, shown: str | None = None, min_side: int | None = None
) -> Image.Image:
    """An upright 8-bit sRGB image; a `UserError` naming `label` and the file otherwise.

    `shown` is the name used in messages (default: the file name). With `min_side`, a large
    image is decoded and kept at a reduced size whose shorter side is still at least
    `min_side` (a 12-megapixel phone photo need not take 36 MB when training at 512 px).
    """
    shown = shown or Path(path).name
    image = _convert(_open(Path(path), label, shown, min_side), label, shown, to_rgb)
    factor = min(image.size) // min_side if min_side else 1
    return image.reduce(factor) if factor >= 2 else image


def _mask_to_l(image: Image.Image, *, shown: str) -> Image.Image:
    if image.mode.startswith("I") or image.mode == "F":
        return _to_8bit(image)
    if image.mode == "L":
        return image
    return to_rgb(image, background=(0, 0, 0), shown=shown).convert("L")


def open_mask(path: Path, *, label: str, shown: str | None = None) -> Image.Image:
    """An inpainting mask as 8-bit greyscale: white is repainted, black is kept.

    Transparent pixels count as black (kept): a mask painted in white on a transparent layer
    repaints the strokes only.
    """
    shown = shown or Path(path).name
    return _convert(_open(Path(path), label, shown, None), label, shown, _mask_to_l)
