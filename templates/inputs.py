"""Every template input, declared once; templates/predict.py is rendered from here.

Bounds come from core/requests.py (what a request is checked against), choices from the
scheduler registry, so the schema, the adapters and the error messages say the same thing.
Build-time only: the renderer and the tests import this module, the running template does not.

    python -m buildkit.cog_adapters templates.inputs:adapters templates/predict.py
"""

from __future__ import annotations

from pathlib import Path

from buildkit.cog_adapters import AdapterClass, Choices, InputSpec, Module, Signature
from core import requests
from core.requests import MAX_PROMPT_CHARS
from core.schedulers import SCHEDULERS

RENDER = "python -m buildkit.cog_adapters templates.inputs:adapters templates/predict.py"
SIZE = dict(default=512, ge=requests.SIZE.low, le=requests.SIZE.high)
INPUTS = [
    InputSpec(
        "prompt",
        str,
        "Input prompt; weighted syntax such as 'a (red)++ car' works. Leave empty for the "
        "instance prompt the weights were trained with.",
        default=None,
        nullable=True,
        max_length=MAX_PROMPT_CHARS,
    ),
    InputSpec(
        "negative_prompt",
        str,
        "What not to see in the image (same weighting syntax).",
        default=None,
        nullable=True,
        max_length=MAX_PROMPT_CHARS,
    ),
    InputSpec(
        "control_image",
        Path,
        "Image for the ControlNet: the template's annotator turns it into the control "
        "(edges, depth, pose…).",
        default=None,
        nullable=True,
    ),
    InputSpec(
        "image",
        Path,
        "Initial image: img2img, or inpainting with mask. Resized to width x height.",
        default=None,
        nullable=True,
    ),
    InputSpec(
        "mask",
        Path,
        "Inpainting mask, the same size as image: white is repainted, black is kept.",
        default=None,
        nullable=True,
    ),
    InputSpec(
        "width",
        int,
        f"Width of the output in pixels: a multiple of {requests.SIZE_MULTIPLE}.",
        **SIZE,
    ),
    InputSpec(
        "height",
        int,
        f"Height of the output in pixels: a multiple of {requests.SIZE_MULTIPLE}.",
        **SIZE,
    ),
    InputSpec(
        "num_outputs",
        int,
        "Number of images to generate; image i uses seed + i.",
        default=1,
        ge=requests.NUM_OUTPUTS.low,
        le=requests.NUM_OUTPUTS.high,
    ),
    InputSpec(
        "num_inference_steps",
        int,
        "Number of denoising steps (with image: about prompt_strength x this many are run, "
        "at least one).",
        default=50,
        ge=requests.STEPS.low,
        le=requests.STEPS.high,
    ),
    InputSpec(
        "guidance_scale",
        float,
        "Scale for classifier-free guidance.",
        default=7.5,
        ge=requests.GUIDANCE.low,
        le=requests.GUIDANCE.high,
    ),
    InputSpec(
        "prompt_strength",
        float,
        "With image: how much to change it (1.0 ignores it).",
        default=0.8,
        ge=requests.STRENGTH.low,
        le=requests.STRENGTH.high,
    ),
    InputSpec(
        "scheduler",
        str,
        "Sampler.",
        default="DPMSolverMultistep",
        choices=Choices("SCHEDULER_CHOICES", tuple(SCHEDULERS)),
    ),
    InputSpec(
        "seed",
        int,
        "Random seed; leave empty for a random one (it is logged). Image i uses seed + i.",
        default=None,
        nullable=True,
        ge=requests.SEED.low,
        le=requests.SEED.high,
    ),
    InputSpec(
        "disable_safety_check",
        bool,
        "Skip the safety checker, which otherwise drops flagged images.",
        default=False,
    ),
    InputSpec(
        "lora_scale",
        float,
        "Strength of the LoRA: the weights' own (a LoRA training's output) and lora_weights'; "
        "0 gives the base model's image.",
        default=0.6,
        ge=requests.LORA_SCALE.low,
        le=requests.LORA_SCALE.high,
    ),
    InputSpec(
        "lora_weights",
        Path,
        "A LoRA for this request only: a URL or file of a LoRA training's output.zip, or of a "
        "diffusers or kohya LoRA .safetensors (SD1.5). Applied on top of the weights.",
        default=None,
        nullable=True,
    ),
    InputSpec(
        "controlnet_conditioning_scale",
        float,
        "How strongly the control image steers the image.",
        default=1.0,
        ge=requests.CONDITIONING_SCALE.low,
        le=requests.CONDITIONING_SCALE.high,
    ),
    InputSpec(
        "return_processed_control",
        bool,
        "Also return the annotator's control image (first).",
        default=False,
    ),
    InputSpec(
        "low_threshold",
        int,
        "Canny low threshold.",
        default=100,
        ge=requests.CANNY_THRESHOLD.low,
        le=requests.CANNY_THRESHOLD.high,
    ),
    InputSpec(
        "high_threshold",
        int,
        "Canny high threshold.",
        default=200,
        ge=requests.CANNY_THRESHOLD.low,
        le=requests.CANNY_THRESHOLD.high,
    ),
]
COMMON = ("prompt", "negative_prompt")
GENERATION = (
    "image",
    "mask",
    "width",
    "height",
    "num_outputs",
    "num_inference_steps",
    "guidance_scale",
    "prompt_strength",
    "scheduler",
    "seed",
    "disable_safety_check",
    "lora_scale",
    "lora_weights",
)
CONTROL = ("controlnet_conditioning_scale", "return_processed_control")
# adapter class -> (the template it serves when $TEMPLATE is unset, its inputs in order)
ADAPTERS = {
    "Vanilla": ("vanilla", (*COMMON, *GENERATION)),
    "ControlNet": ("controlnet-depth", (*COMMON, "control_image", *GENERATION, *CONTROL)),
    "Canny": (
        "controlnet-canny",
        (*COMMON, "control_image", *GENERATION, *CONTROL, "low_threshold", "high_threshold"),
    ),
}
BODY = """
inputs = dict(locals())
del inputs["self"]
yield from self.generate(inputs)
"""
DOCSTRING = """
Cog adapters for every template: declare inputs, build a request, stream images.

    Vanilla     vanilla                     txt2img, img2img (image), inpainting (image + mask)
    ControlNet  controlnet-<type>           + control_image (any mode), type from $TEMPLATE
    Canny       controlnet-canny            + the Canny thresholds

Outputs stream: each image is sent as soon as it is made (also as server-sent events, thanks
to @streaming; on a GPU a request's images are made as one batch). Inputs keep
dream-templates' names and defaults. This file is rendered from templates/inputs.py (bounds
from core/requests.py, choices from core/schedulers.py), because `cog build` reads the
signatures statically and resolves `Inputs.x` only within this file; tests/test_cog_adapters.py
fails when it is stale.
"""


def template_module(
    classes: dict, inputs: list[InputSpec], docstring: str, source: str, command: str
) -> Module:
    """A template adapter file: one streaming runner per entry of `classes` (class name ->
    (the template it serves when $TEMPLATE is unset, its inputs in order)) over `inputs`."""
    runners = [
        AdapterClass(
            name,
            ("TemplateRunner", "BaseRunner"),
            Signature("run", names, "Iterator[Path]", BODY, decorators=("streaming",)),
            attributes=(f'default_template = "{template}"',),
        )
        for name, (template, names) in classes.items()
    ]
    return Module(
        docstring=docstring,
        imports=[
            "from collections.abc import Iterator",
            "",
            "from cog import BaseRunner, Input, Path, streaming",
            "",
            "from templates.base import TemplateRunner",
        ],
        inputs=inputs,
        parts=runners,
        source=source,
        command=command,
    )


def adapters() -> Module:
    """The Module that templates/predict.py is rendered from."""
    return template_module(ADAPTERS, INPUTS, DOCSTRING, "templates/inputs.py", RENDER)
