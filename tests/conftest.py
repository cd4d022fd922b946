"""Fixtures shared by the whole suite: tiny weights and real photos, built offline once."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildkit.sample_photos import write_photo_zip


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory) -> Path:
    """A tiny random-weight SD1.5 pipeline in the base-weights/ layout."""
    from buildkit.tiny import write_sd15

    return write_sd15(tmp_path_factory.mktemp("tiny") / "sd15")


@pytest.fixture(scope="session")
def photo_zip(tmp_path_factory) -> Path:
    """Real photos (scikit-image's), landscape so crops matter, zipped in a folder."""
    return write_photo_zip(tmp_path_factory.mktemp("photos") / "photos.zip", size=(96, 72))
