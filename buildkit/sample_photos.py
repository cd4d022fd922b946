"""Real photos that ship inside a PyPI package (scikit-image), for the demo, tests and benchmarks.

No download: `skimage.data` carries these files in its wheel.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def write_photo_zip(path: Path, names=PHOTOS, size: tuple[int, int] | None = None) -> Path:
    """A zip of JPEGs in a folder, as a user would upload them."""
    path = Path(path)
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            image = photo(name)
            if size:
                image = image.resize(size)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            archive.writestr(f"photos/{name}.jpg", buffer.getvalue())
    return path
