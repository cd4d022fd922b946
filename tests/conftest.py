"""Fixtures shared by the whole suite: tiny weights and real photos, built offline once."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")  # scikit-image ships these offline


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def write_photo_zip(path: Path, names=PHOTOS, size: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            image = photo(name)
            if size:
                image = image.resize((size, size))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            archive.writestr(f"photos/{name}.jpg", buffer.getvalue())
    return path


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory) -> Path:
    """A tiny random-weight SD1.5 pipeline in the base-weights/ layout."""
    from buildkit.tiny import write_sd15

    return write_sd15(tmp_path_factory.mktemp("tiny") / "sd15")


@pytest.fixture(scope="session")
def photo_zip(tmp_path_factory) -> Path:
    """Real photos (scikit-image's), zipped in a folder as a user would upload them."""
    return write_photo_zip(tmp_path_factory.mktemp("photos") / "photos.zip", size=96)
