"""Helpers for template tests: images as data URIs, and a template server on given weights."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

from buildkit.cog_client import CogServer
from buildkit.sample_photos import photo

SMALL = dict(width=64, height=64, num_inference_steps=2)


def image_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decode_image(uri: str) -> Image.Image:
    from buildkit.cog_client import decode_data_uri

    return Image.open(io.BytesIO(decode_data_uri(uri))).convert("RGB")


def photo_uri(name: str = "astronaut", size=(64, 64)) -> str:
    return image_uri(photo(name).resize(size))


def serve(name: str, weights: Path | None, template_dir: Path, tmp: Path, **env) -> CogServer:
    environment = {
        "WEIGHTS_DIR": str(weights or tmp / "no-weights"),
        "TEMPLATE_WEIGHTS_DIR": str(template_dir),
        "COG_TEST_LOG_DIR": str(tmp),
        **env,
    }
    return CogServer(name, env=environment)
