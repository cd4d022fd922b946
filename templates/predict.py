"""Cog adapters for every template: declare inputs, build a request, stream images.

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

# Rendered by buildkit/cog_adapters.py from templates/inputs.py; edit there, then run:
# python -m buildkit.cog_adapters templates.inputs:adapters templates/predict.py

from collections.abc import Iterator

from cog import BaseRunner, Input, Path, streaming

from templates.base import TemplateRunner

SCHEDULER_CHOICES = [
    "DDIM",
    "DPMSolverMultistep",
    "HeunDiscrete",
    "K_EULER_ANCESTRAL",
    "K_EULER",
    "KLMS",
    "PNDM",
    "UniPCMultistep",
    "KarrasDPM",
]


class Inputs:
    prompt = Input(
        default=None,
        max_length=2000,
        description="Input prompt; weighted syntax such as 'a (red)++ car' works. Leave empty for the instance prompt the weights were trained with.",
    )
    negative_prompt = Input(
        default=None,
        max_length=2000,
        description="What not to see in the image (same weighting syntax).",
    )
    control_image = Input(
        default=None,
        description="Image for the ControlNet: the template's annotator turns it into the control (edges, depth, pose…).",
    )
    image = Input(
        default=None,
        description="Initial image: img2img, or inpainting with mask. Resized to width x height.",
    )
    mask = Input(
        default=None,
        description="Inpainting mask, the same size as image: white is repainted, black is kept.",
    )
    width = Input(
        default=512,
        ge=64,
        le=1024,
        description="Width of the output in pixels: a multiple of 8.",
    )
    height = Input(
        default=512,
        ge=64,
        le=1024,
        description="Height of the output in pixels: a multiple of 8.",
    )
    num_outputs = Input(
        default=1,
        ge=1,
        le=10,
        description="Number of images to generate; image i uses seed + i.",
    )
    num_inference_steps = Input(
        default=50,
        ge=1,
        le=500,
        description="Number of denoising steps (with image: about prompt_strength x this many are run, at least one).",
    )
    guidance_scale = Input(
        default=7.5,
        ge=1.0,
        le=50.0,
        description="Scale for classifier-free guidance.",
    )
    prompt_strength = Input(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="With image: how much to change it (1.0 ignores it).",
    )
    scheduler = Input(
        default="DPMSolverMultistep",
        choices=SCHEDULER_CHOICES,
        description="Sampler.",
    )
    seed = Input(
        default=None,
        ge=0,
        le=4294967295,
        description="Random seed; leave empty for a random one (it is logged). Image i uses seed + i.",
    )
    disable_safety_check = Input(
        default=False,
        description="Skip the safety checker, which otherwise drops flagged images.",
    )
    lora_scale = Input(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Strength of the LoRA: the weights' own (a LoRA training's output) and lora_weights'; 0 gives the base model's image.",
    )
    lora_weights = Input(
        default=None,
        description="A LoRA for this request only: a URL or file of a LoRA training's output.zip, or of a diffusers or kohya LoRA .safetensors (SD1.5). Applied on top of the weights.",
    )
    controlnet_conditioning_scale = Input(
        default=1.0,
        ge=0.0,
        le=4.0,
        description="How strongly the control image steers the image.",
    )
    return_processed_control = Input(
        default=False,
        description="Also return the annotator's control image (first).",
    )
    low_threshold = Input(
        default=100,
        ge=1,
        le=255,
        description="Canny low threshold.",
    )
    high_threshold = Input(
        default=200,
        ge=1,
        le=255,
        description="Canny high threshold.",
    )


class Vanilla(TemplateRunner, BaseRunner):
    default_template = "vanilla"

    @streaming
    def run(
        self,
        prompt: str | None = Inputs.prompt,
        negative_prompt: str | None = Inputs.negative_prompt,
        image: Path | None = Inputs.image,
        mask: Path | None = Inputs.mask,
        width: int = Inputs.width,
        height: int = Inputs.height,
        num_outputs: int = Inputs.num_outputs,
        num_inference_steps: int = Inputs.num_inference_steps,
        guidance_scale: float = Inputs.guidance_scale,
        prompt_strength: float = Inputs.prompt_strength,
        scheduler: str = Inputs.scheduler,
        seed: int | None = Inputs.seed,
        disable_safety_check: bool = Inputs.disable_safety_check,
        lora_scale: float = Inputs.lora_scale,
        lora_weights: Path | None = Inputs.lora_weights,
    ) -> Iterator[Path]:
        inputs = dict(locals())
        del inputs["self"]
        yield from self.generate(inputs)


class ControlNet(TemplateRunner, BaseRunner):
    default_template = "controlnet-depth"

    @streaming
    def run(
        self,
        prompt: str | None = Inputs.prompt,
        negative_prompt: str | None = Inputs.negative_prompt,
        control_image: Path | None = Inputs.control_image,
        image: Path | None = Inputs.image,
        mask: Path | None = Inputs.mask,
        width: int = Inputs.width,
        height: int = Inputs.height,
        num_outputs: int = Inputs.num_outputs,
        num_inference_steps: int = Inputs.num_inference_steps,
        guidance_scale: float = Inputs.guidance_scale,
        prompt_strength: float = Inputs.prompt_strength,
        scheduler: str = Inputs.scheduler,
        seed: int | None = Inputs.seed,
        disable_safety_check: bool = Inputs.disable_safety_check,
        lora_scale: float = Inputs.lora_scale,
        lora_weights: Path | None = Inputs.lora_weights,
        controlnet_conditioning_scale: float = Inputs.controlnet_conditioning_scale,
        return_processed_control: bool = Inputs.return_processed_control,
    ) -> Iterator[Path]:
        inputs = dict(locals())
        del inputs["self"]
        yield from self.generate(inputs)


class Canny(TemplateRunner, BaseRunner):
    default_template = "controlnet-canny"

    @streaming
    def run(
        self,
        prompt: str | None = Inputs.prompt,
        negative_prompt: str | None = Inputs.negative_prompt,
        control_image: Path | None = Inputs.control_image,
        image: Path | None = Inputs.image,
        mask: Path | None = Inputs.mask,
        width: int = Inputs.width,
        height: int = Inputs.height,
        num_outputs: int = Inputs.num_outputs,
        num_inference_steps: int = Inputs.num_inference_steps,
        guidance_scale: float = Inputs.guidance_scale,
        prompt_strength: float = Inputs.prompt_strength,
        scheduler: str = Inputs.scheduler,
        seed: int | None = Inputs.seed,
        disable_safety_check: bool = Inputs.disable_safety_check,
        lora_scale: float = Inputs.lora_scale,
        lora_weights: Path | None = Inputs.lora_weights,
        controlnet_conditioning_scale: float = Inputs.controlnet_conditioning_scale,
        return_processed_control: bool = Inputs.return_processed_control,
        low_threshold: int = Inputs.low_threshold,
        high_threshold: int = Inputs.high_threshold,
    ) -> Iterator[Path]:
        inputs = dict(locals())
        del inputs["self"]
        yield from self.generate(inputs)
