"""Cog adapters of the SDXL templates: replicate/cog-sdxl's predictor inputs, over the same engine.

    SDXL            sdxl                     txt2img, img2img (image), inpainting (image +
                                             mask); refine with the refiner; the invisible
                                             watermark; the trained tokens (TOK)
    SDXLControlNet  sdxl-controlnet-depth    + control_image (any mode)
    SDXLCanny       sdxl-controlnet-canny    + the Canny thresholds

Rendered from templates/sdxl_inputs.py, because `cog build` reads the signatures statically;
tests/test_cog_adapters.py fails when it is stale.
"""

# Rendered by buildkit/cog_adapters.py from templates/sdxl_inputs.py; edit there, then run:
# python -m buildkit.cog_adapters templates.sdxl_inputs:adapters templates/sdxl_predict.py

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

REFINE_CHOICES = [
    "no_refiner",
    "expert_ensemble_refiner",
    "base_image_refiner",
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
    image = Input(
        default=None,
        description="Initial image: img2img, or inpainting with mask. Resized to width x height.",
    )
    mask = Input(
        default=None,
        description="Inpainting mask, the same size as image: white is repainted, black is kept.",
    )
    width = Input(
        default=1024,
        ge=64,
        le=2048,
        description="Width of the output in pixels: a multiple of 8.",
    )
    height = Input(
        default=1024,
        ge=64,
        le=2048,
        description="Height of the output in pixels: a multiple of 8.",
    )
    num_outputs = Input(
        default=1,
        ge=1,
        le=10,
        description="Number of images to generate; image i uses seed + i.",
    )
    scheduler = Input(
        default="K_EULER",
        choices=SCHEDULER_CHOICES,
        description="Sampler.",
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
    seed = Input(
        default=None,
        ge=0,
        le=4294967295,
        description="Random seed; leave empty for a random one (it is logged). Image i uses seed + i.",
    )
    refine = Input(
        default="no_refiner",
        choices=REFINE_CHOICES,
        description="Which refine style to use: the refiner finishes the base's last high_noise_frac (expert_ensemble_refiner) or refines its whole image (base_image_refiner).",
    )
    high_noise_frac = Input(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="For expert_ensemble_refiner, the fraction of noise the base denoises.",
    )
    refine_steps = Input(
        default=None,
        ge=1,
        le=500,
        description="For base_image_refiner, the number of steps to refine; defaults to num_inference_steps.",
    )
    apply_watermark = Input(
        default=True,
        description="Applies an invisible watermark so that downstream applications can tell the image is generated (images 256 pixels wide and more).",
    )
    lora_scale = Input(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Strength of the LoRA: the weights' own (a LoRA training's output) and lora_weights'; 0 gives the base model's image.",
    )
    replicate_weights = Input(
        default=None,
        description="cog-sdxl's name for lora_weights: a trained_model.tar (or LoRA) for this request.",
    )
    lora_weights = Input(
        default=None,
        description="A LoRA for this request only: a URL or file of an SDXL training's trained_model.tar or output, or of a diffusers or kohya SDXL LoRA .safetensors. Applied on top of the weights.",
    )
    disable_safety_checker = Input(
        default=False,
        description="Skip the safety checker, which otherwise drops flagged images.",
    )
    control_image = Input(
        default=None,
        description="Image for the ControlNet: the template's annotator turns it into the control (edges, depth, pose…).",
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


class SDXL(TemplateRunner, BaseRunner):
    default_template = "sdxl"

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
        scheduler: str = Inputs.scheduler,
        num_inference_steps: int = Inputs.num_inference_steps,
        guidance_scale: float = Inputs.guidance_scale,
        prompt_strength: float = Inputs.prompt_strength,
        seed: int | None = Inputs.seed,
        refine: str = Inputs.refine,
        high_noise_frac: float = Inputs.high_noise_frac,
        refine_steps: int | None = Inputs.refine_steps,
        apply_watermark: bool = Inputs.apply_watermark,
        lora_scale: float = Inputs.lora_scale,
        replicate_weights: Path | None = Inputs.replicate_weights,
        lora_weights: Path | None = Inputs.lora_weights,
        disable_safety_checker: bool = Inputs.disable_safety_checker,
    ) -> Iterator[Path]:
        inputs = dict(locals())
        del inputs["self"]
        yield from self.generate(inputs)


class SDXLControlNet(TemplateRunner, BaseRunner):
    default_template = "sdxl-controlnet-depth"

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
        scheduler: str = Inputs.scheduler,
        num_inference_steps: int = Inputs.num_inference_steps,
        guidance_scale: float = Inputs.guidance_scale,
        prompt_strength: float = Inputs.prompt_strength,
        seed: int | None = Inputs.seed,
        refine: str = Inputs.refine,
        high_noise_frac: float = Inputs.high_noise_frac,
        refine_steps: int | None = Inputs.refine_steps,
        apply_watermark: bool = Inputs.apply_watermark,
        lora_scale: float = Inputs.lora_scale,
        replicate_weights: Path | None = Inputs.replicate_weights,
        lora_weights: Path | None = Inputs.lora_weights,
        disable_safety_checker: bool = Inputs.disable_safety_checker,
        control_image: Path | None = Inputs.control_image,
        controlnet_conditioning_scale: float = Inputs.controlnet_conditioning_scale,
        return_processed_control: bool = Inputs.return_processed_control,
    ) -> Iterator[Path]:
        inputs = dict(locals())
        del inputs["self"]
        yield from self.generate(inputs)


class SDXLCanny(TemplateRunner, BaseRunner):
    default_template = "sdxl-controlnet-canny"

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
        scheduler: str = Inputs.scheduler,
        num_inference_steps: int = Inputs.num_inference_steps,
        guidance_scale: float = Inputs.guidance_scale,
        prompt_strength: float = Inputs.prompt_strength,
        seed: int | None = Inputs.seed,
        refine: str = Inputs.refine,
        high_noise_frac: float = Inputs.high_noise_frac,
        refine_steps: int | None = Inputs.refine_steps,
        apply_watermark: bool = Inputs.apply_watermark,
        lora_scale: float = Inputs.lora_scale,
        replicate_weights: Path | None = Inputs.replicate_weights,
        lora_weights: Path | None = Inputs.lora_weights,
        disable_safety_checker: bool = Inputs.disable_safety_checker,
        control_image: Path | None = Inputs.control_image,
        controlnet_conditioning_scale: float = Inputs.controlnet_conditioning_scale,
        return_processed_control: bool = Inputs.return_processed_control,
        low_threshold: int = Inputs.low_threshold,
        high_threshold: int = Inputs.high_threshold,
    ) -> Iterator[Path]:
        inputs = dict(locals())
        del inputs["self"]
        yield from self.generate(inputs)
