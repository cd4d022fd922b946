"""Real-shape SD1.5 with random weights for the GPU lane, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_sd15(tmp_path_factory) -> Path:
    from buildkit.real_shape import write_sd15

    return write_sd15(tmp_path_factory.mktemp("real-shape") / "sd15")
