"""The SDXL template's Cog inputs: replicate/cog-sdxl's predictor, names and defaults kept.

Shared inputs are templates/inputs.py's, with cog-sdxl's defaults (1024 px, K_EULER); the
refiner's, the watermark's and cog-sdxl's names for our inputs (`replicate_weights` for
`lora_weights`, `disable_safety_checker`) are declared here. Build-time only, like inputs.py.

    python -m buildkit.cog_adapters templates.sdxl_inputs:adapters templates/sdxl_predict.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from buildkit.cog_adapters import Choices, InputSpec, Module
from core import requests
from templates import inputs as shared

RENDER = "python -m buildkit.cog_adapters templates.sdxl_inputs:adapters templates/sdxl_predict.py"
SHARED = {spec.name: spec for spec in shared.INPUTS}
SIZE = dict(default=1024, ge=requests.SIZE_SDXL.low, le=requests.SIZE_SDXL.high)
CHANGED = {
    "width": SIZE,
    "height": SIZE,
    "scheduler": dict(default="K_EULER"),
    "lora_weights": dict(
        description="A LoRA for this request only: a URL or file of an SDXL training's "
        "trained_model.tar or output, or of a diffusers or kohya SDXL LoRA .safetensors. "
        "Applied on top of the weights."
    ),
}
OWN = [
    InputSpec(
        "refine",
        str,
        "Which refine style to use: the refiner finishes the base's last high_noise_frac "
        "(expert_ensemble_refiner) or refines its whole image (base_image_refiner).",
        default=requests.NO_REFINER,
        choices=Choices("REFINE_CHOICES", requests.REFINE_MODES),
    ),
    InputSpec(
        "high_noise_frac",
        float,
        "For expert_ensemble_refiner, the fraction of noise the base denoises.",
        default=0.8,
        ge=requests.HIGH_NOISE_FRAC.low,
        le=requests.HIGH_NOISE_FRAC.high,
    ),
    InputSpec(
        "refine_steps",
        int,
        "For base_image_refiner, the number of steps to refine; defaults to num_inference_steps.",
        default=None,
        nullable=True,
        ge=requests.STEPS.low,
        le=requests.STEPS.high,
    ),
    InputSpec(
        "apply_watermark",
        bool,
        "Applies an invisible watermark so that downstream applications can tell the image is "
        "generated (images 256 pixels wide and more).",
        default=True,
    ),
    InputSpec(
        "replicate_weights",
        Path,
        "cog-sdxl's name for lora_weights: a trained_model.tar (or LoRA) for this request.",
        default=None,
        nullable=True,
    ),
    InputSpec(
        "disable_safety_checker",
        bool,
        "Skip the safety checker, which otherwise drops flagged images.",
        default=False,
    ),
]
ORDER = (
    "prompt",
    "negative_prompt",
    "image",
    "mask",
    "width",
    "height",
    "num_outputs",
    "scheduler",
    "num_inference_steps",
    "guidance_scale",
    "prompt_strength",
    "seed",
    "refine",
    "high_noise_frac",
    "refine_steps",
    "apply_watermark",
    "lora_scale",
    "replicate_weights",
    "lora_weights",
    "disable_safety_checker",
)
CONTROL = ("control_image", "controlnet_conditioning_scale", "return_processed_control")
# adapter class -> (the template it serves when $TEMPLATE is unset, its inputs in order)
ADAPTERS = {
    "SDXL": ("sdxl", ORDER),
    "SDXLControlNet": ("sdxl-controlnet-depth", (*ORDER, *CONTROL)),
    "SDXLCanny": ("sdxl-controlnet-canny", (*ORDER, *CONTROL, "low_threshold", "high_threshold")),
}
DOCSTRING = """
Cog adapters of the SDXL templates: replicate/cog-sdxl's predictor inputs, over the same engine.

    SDXL            sdxl                     txt2img, img2img (image), inpainting (image +
                                             mask); refine with the refiner; the invisible
                                             watermark; the trained tokens (TOK)
    SDXLControlNet  sdxl-controlnet-depth    + control_image (any mode)
    SDXLCanny       sdxl-controlnet-canny    + the Canny thresholds

Rendered from templates/sdxl_inputs.py, because `cog build` reads the signatures statically;
tests/test_cog_adapters.py fails when it is stale.
"""


def inputs() -> list[InputSpec]:
    own = {spec.name: spec for spec in OWN}
    chosen = []
    for name in dict.fromkeys(n for _, names in ADAPTERS.values() for n in names):
        spec = own.get(name) or dataclasses.replace(SHARED[name], **CHANGED.get(name, {}))
        chosen.append(spec)
    return chosen


def adapters() -> Module:
    """The Module that templates/sdxl_predict.py is rendered from."""
    return shared.template_module(ADAPTERS, inputs(), DOCSTRING, "templates/sdxl_inputs.py", RENDER)
