"""What each mode's diffusers pipeline takes beyond the prompt, steps, guidance and generator.

The mode comes from the request (core/requests.py: an image, a mask, a control image); the
same arguments serve both families, since SDXL's pipelines take SD1.5's names.
"""

from __future__ import annotations

from core.requests import GenerationRequest, Mode

CONTROL_MODES = {Mode.CONTROLNET, Mode.CONTROLNET_IMG2IMG, Mode.CONTROLNET_INPAINT}
STRENGTH_MODES = {Mode.IMG2IMG, Mode.INPAINT, Mode.CONTROLNET_IMG2IMG, Mode.CONTROLNET_INPAINT}


def mode_arguments(mode: Mode, request: GenerationRequest, control) -> dict:
    """What each diffusers pipeline takes beyond the prompt, steps, guidance and generator."""
    size = (request.width, request.height)
    image = request.image.convert("RGB").resize(size) if request.image is not None else None
    mask = request.mask.convert("L").resize(size) if request.mask is not None else None
    scale = {"controlnet_conditioning_scale": request.controlnet_conditioning_scale}
    strength = {"strength": request.denoising_strength}
    return {
        Mode.TXT2IMG: {"width": size[0], "height": size[1]},
        Mode.IMG2IMG: {"image": image, **strength},
        Mode.INPAINT: {
            "image": image,
            "mask_image": mask,
            "width": size[0],
            "height": size[1],
            **strength,
        },
        Mode.CONTROLNET: {"image": control, "width": size[0], "height": size[1], **scale},
        Mode.CONTROLNET_IMG2IMG: {"image": image, "control_image": control, **strength, **scale},
        Mode.CONTROLNET_INPAINT: {
            "image": image,
            "mask_image": mask,
            "control_image": control,
            "width": size[0],
            "height": size[1],
            **strength,
            **scale,
        },
    }[mode]
