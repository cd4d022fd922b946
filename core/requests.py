"""One generation request, typed and checked before any work is done."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from PIL import Image

from core.errors import UserError
from core.schedulers import SCHEDULERS

MAX_PROMPT_CHARS = 2000


@dataclass(frozen=True)
class Bound:
    """An inclusive range. The one place a request's limits are declared: the Cog adapters'
    `ge`/`le` are rendered from these (templates/inputs.py), and requests are checked against
    them here, so the schema and the error messages cannot disagree."""

    low: float
    high: float

    def check(self, name: str, value: float) -> None:
        if not self.low <= value <= self.high:
            raise UserError(f"{name}={value} must be from {self.low} to {self.high}")


SIZE = Bound(64, 1024)  # pixels, and a multiple of SIZE_MULTIPLE
SIZE_SDXL = Bound(64, 2048)  # SDXL's aspect buckets reach 1536 x 640
SIZE_MULTIPLE = 8
NUM_OUTPUTS = Bound(1, 10)
STEPS = Bound(1, 500)
GUIDANCE = Bound(1.0, 50.0)  # cog-sdxl's range
STRENGTH = Bound(0.0, 1.0)
CONDITIONING_SCALE = Bound(0.0, 4.0)
SEED = Bound(0, 2**32 - 1)
CANNY_THRESHOLD = Bound(1, 255)
LORA_SCALE = Bound(0.0, 1.0)
HIGH_NOISE_FRAC = Bound(0.0, 1.0)
NO_REFINER, EXPERT_ENSEMBLE, BASE_IMAGE = (
    "no_refiner",
    "expert_ensemble_refiner",
    "base_image_refiner",
)
REFINE_MODES = (NO_REFINER, EXPERT_ENSEMBLE, BASE_IMAGE)  # cog-sdxl's, in its order
LIMITS = {
    "num_outputs": NUM_OUTPUTS,
    "num_inference_steps": STEPS,
    "guidance_scale": GUIDANCE,
    "prompt_strength": STRENGTH,
    "controlnet_conditioning_scale": CONDITIONING_SCALE,
    "seed": SEED,
    "lora_scale": LORA_SCALE,
    "high_noise_frac": HIGH_NOISE_FRAC,
}


class Mode(str, Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    CONTROLNET = "controlnet"
    CONTROLNET_IMG2IMG = "controlnet_img2img"
    CONTROLNET_INPAINT = "controlnet_inpaint"


@dataclass
class GenerationRequest:
    prompt: str
    negative_prompt: str | None = None
    image: Image.Image | None = None
    mask: Image.Image | None = None
    control_image: Image.Image | None = None
    width: int = 512
    height: int = 512
    num_outputs: int = 1
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    prompt_strength: float = 0.8
    scheduler: str = "DPMSolverMultistep"
    seed: int = 0
    disable_safety_check: bool = False
    controlnet_conditioning_scale: float = 1.0
    control_params: dict = field(default_factory=dict)
    return_processed_control: bool = False
    lora_scale: float = 0.6  # of every LoRA the request runs (the weights' and lora_weights)
    lora_weights: Path | None = None  # an uploaded LoRA file or adapter output.zip
    lora_input: str = "lora_weights"  # the input it came as (cog-sdxl: replicate_weights)
    refine: str = NO_REFINER  # SDXL: core/refiner.py
    high_noise_frac: float = 0.8
    refine_steps: int | None = None
    apply_watermark: bool = True  # SDXL: core/watermark.py
    size: Bound = SIZE  # the template's (TemplateSpec.size)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value % SIZE_MULTIPLE or not self.size.low <= value <= self.size.high:
                raise UserError(
                    f"{name}={value} must be a multiple of {SIZE_MULTIPLE} "
                    f"from {self.size.low} to {self.size.high}"
                )
        for name, bound in LIMITS.items():
            bound.check(name, getattr(self, name))
        for name in ("prompt", "negative_prompt"):
            value = getattr(self, name) or ""
            if len(value) > MAX_PROMPT_CHARS:
                raise UserError(
                    f"{name} has {len(value)} characters; at most {MAX_PROMPT_CHARS} are allowed"
                )
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"scheduler={self.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        self._check_refine()
        if self.mask is not None and self.image is None:
            raise UserError("mask needs an image: give the image to inpaint as well")
        if self.mask is not None and self.mask.size != self.image.size:
            raise UserError(
                f"mask is {self.mask.size[0]}x{self.mask.size[1]} but image is "
                f"{self.image.size[0]}x{self.image.size[1]}; they must match"
            )

    def _check_refine(self) -> None:
        if self.refine not in REFINE_MODES:
            raise UserError(f"refine={self.refine!r} is not one of {', '.join(REFINE_MODES)}")
        if self.refine_steps is not None:
            STEPS.check("refine_steps", self.refine_steps)

    @property
    def denoising_strength(self) -> float:
        """prompt_strength, raised when needed so that img2img and inpainting run at least one
        denoising step: diffusers runs int(steps x strength) of them and fails on none."""
        return at_least_one_step(self.prompt_strength, self.num_inference_steps)

    @property
    def mode(self) -> Mode:
        control = self.control_image is not None
        if self.mask is not None:
            return Mode.CONTROLNET_INPAINT if control else Mode.INPAINT
        if self.image is not None:
            return Mode.CONTROLNET_IMG2IMG if control else Mode.IMG2IMG
        return Mode.CONTROLNET if control else Mode.TXT2IMG


def at_least_one_step(strength: float, steps: int) -> float:
    """The smallest strength >= `strength` for which int(steps * strength) >= 1."""
    minimum = 1 / steps
    while int(steps * minimum) < 1:  # 49 * (1 / 49) is 0.9999999999999999
        minimum = math.nextafter(minimum, math.inf)
    return min(max(strength, minimum), 1.0)
