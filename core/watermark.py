"""SDXL's invisible watermark (invisible-watermark's DWT-DCT, through diffusers), per request.

Every SDXL pipeline is built without one (`add_watermarker=False`), and each request sets the
shared watermarker on the pipelines it runs, or None with `apply_watermark=false`, as cog-sdxl
does; diffusers applies it to images of 256 pixels and wider only.
"""

from __future__ import annotations

import logging

from core.errors import UserError

log = logging.getLogger(__name__)
MISSING = (
    "apply_watermark needs the invisible-watermark package, which this image lacks; install "
    "it (requirements/cog.txt lists it) or set apply_watermark=false"
)


def load():
    """diffusers' SDXL watermarker, or None (with a log line) when the package is absent."""
    from diffusers.utils import is_invisible_watermark_available

    if not is_invisible_watermark_available():
        log.warning("%s; every request with apply_watermark=true will fail", MISSING)
        return None
    from diffusers.pipelines.stable_diffusion_xl.watermark import StableDiffusionXLWatermarker

    return StableDiffusionXLWatermarker()


def choose(watermarker, apply: bool):
    """What a pipeline's `watermark` is for one request."""
    if not apply:
        return None
    if watermarker is None:
        raise UserError(MISSING)
    return watermarker
