"""The one inference engine behind every template.

The SD modules are loaded once; each mode (txt2img, img2img, inpaint, and the same three with a
ControlNet) is a diffusers pipeline built with `from_pipe` over those same modules, plus a fresh
scheduler, for each request, so nothing is copied and nothing a request sets outlives it.
Images are generated one at a time (seed, seed+1, …) so they stream as they are made.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from core import safety
from core.annotators import Annotator, load_annotator
from core.controls import ControlType
from core.errors import UserError, WeightsMissingError
from core.manifest import Family
from core.prompts import PromptEncoder
from core.requests import GenerationRequest, Mode
from core.schedulers import make_scheduler
from core.weights import SDWeights

log = logging.getLogger(__name__)
PIPELINES = {
    Family.SD15: {
        Mode.TXT2IMG: "StableDiffusionPipeline",
        Mode.IMG2IMG: "StableDiffusionImg2ImgPipeline",
        Mode.INPAINT: "StableDiffusionInpaintPipeline",
        Mode.CONTROLNET: "StableDiffusionControlNetPipeline",
        Mode.CONTROLNET_IMG2IMG: "StableDiffusionControlNetImg2ImgPipeline",
        Mode.CONTROLNET_INPAINT: "StableDiffusionControlNetInpaintPipeline",
    },
}
CONTROL_MODES = {Mode.CONTROLNET, Mode.CONTROLNET_IMG2IMG, Mode.CONTROLNET_INPAINT}


def optimize(pipeline) -> None:
    """Opt-in speed-ups from $INFERENCE_OPTIMIZATIONS (comma-separated): channels_last, compile.

    Attention already runs through PyTorch SDPA; torch.compile pays off only on a GPU, after a
    warm-up of the first requests.
    """
    chosen = {o.strip() for o in os.environ.get("INFERENCE_OPTIMIZATIONS", "").split(",") if o}
    unknown = chosen - {"channels_last", "compile"}
    if unknown:
        raise UserError(
            f"INFERENCE_OPTIMIZATIONS: unknown {', '.join(sorted(unknown))}; "
            "allowed: channels_last, compile"
        )
    if "channels_last" in chosen:
        pipeline.unet.to(memory_format=torch.channels_last)
    if "compile" in chosen:
        pipeline.unet = torch.compile(pipeline.unet)


def device_and_dtype() -> tuple[str, torch.dtype]:
    if torch.cuda.is_available():
        return "cuda", torch.float16
    return "cpu", torch.float32


@dataclass
class Engine:
    family: Family
    base: object  # the txt2img pipeline whose modules every mode shares
    prompts: PromptEncoder
    controlnet: object | None = None
    annotator: Annotator | None = None
    checker: safety.SafetyChecker | None = None
    checker_dir: Path | None = None
    dtype: torch.dtype = torch.float32

    @classmethod
    def load(
        cls, weights: SDWeights, *, template_dir: Path, control: ControlType | None = None
    ) -> Engine:
        import diffusers

        if weights.family not in PIPELINES:
            raise UserError(
                f"{weights.directory}: {weights.family.value} weights are not "
                "supported by this template"
            )
        device, dtype = device_and_dtype()
        pipeline_class = getattr(diffusers, PIPELINES[weights.family][Mode.TXT2IMG])
        base = pipeline_class.from_pretrained(
            weights.directory,
            safety_checker=None,
            requires_safety_checker=False,
            dtype=dtype,
            use_safetensors=True,
            local_files_only=True,
        ).to(device)
        base.set_progress_bar_config(disable=True)
        optimize(base)
        prompts = PromptEncoder(base.tokenizer, base.text_encoder)
        engine = cls(weights.family, base, prompts, dtype=dtype)
        if control is not None:
            engine.controlnet = diffusers.ControlNetModel.from_pretrained(
                _controlnet_dir(template_dir, control),
                dtype=dtype,
                use_safetensors=True,
                local_files_only=True,
            ).to(device)
            engine.annotator = load_annotator(control, template_dir / "annotator", device)
        engine.checker_dir = template_dir / "safety-checker"
        engine.checker = safety.load(engine.checker_dir, device, dtype)
        return engine

    def pipeline(self, mode: Mode, scheduler: str):
        import diffusers

        extra = {}
        if mode in CONTROL_MODES:
            if self.controlnet is None:
                raise UserError("control_image needs a ControlNet template; this one has none")
            extra["controlnet"] = self.controlnet
        pipeline_class = getattr(diffusers, PIPELINES[self.family][mode])
        fresh = make_scheduler(scheduler, self.base.scheduler.config)
        # from_pipe casts to its `dtype` (float32 unless told): pass ours, or the shared fp16
        # modules would be upcast in place on a GPU.
        pipeline = pipeline_class.from_pipe(self.base, scheduler=fresh, dtype=self.dtype, **extra)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def control(self, request: GenerationRequest) -> Image.Image:
        return self.annotator(
            request.control_image,
            width=request.width,
            height=request.height,
            **request.control_params,
        )

    def generate(self, request: GenerationRequest) -> Iterator[Image.Image]:
        """The control image first when asked for, then each kept image as it is made."""
        mode = request.mode
        if not request.disable_safety_check and self.checker is None:
            raise safety.missing_error(self.checker_dir)
        pipeline = self.pipeline(mode, request.scheduler)
        control = self.control(request) if mode in CONTROL_MODES else None
        if control is not None and request.return_processed_control:
            yield control
        positive, negative = self.prompts(request.prompt, request.negative_prompt)
        log.info("mode %s, seed %d (image i uses seed + i)", mode.value, request.seed)
        print(f"Using seed: {request.seed}", flush=True)
        kept = 0
        for index in range(request.num_outputs):
            generator = torch.Generator().manual_seed(request.seed + index)
            arguments = mode_arguments(mode, request, control)
            image = pipeline(
                prompt_embeds=positive,
                negative_prompt_embeds=negative,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                generator=generator,
                **arguments,
            ).images[0]
            if not request.disable_safety_check and self.checker.flagged(image):
                print(
                    f"image {index} (seed {request.seed + index}) was flagged by the safety "
                    "checker and dropped",
                    flush=True,
                )
                continue
            kept += 1
            yield image
        if kept == 0:
            raise UserError(
                f"all {request.num_outputs} images were flagged by the safety "
                "checker; try another prompt or seed"
            )


def _controlnet_dir(template_dir: Path, control: ControlType) -> Path:
    folder = Path(template_dir) / "controlnet"
    if not (folder / "config.json").is_file():
        raise WeightsMissingError(
            f"the controlnet-{control.value} template's ControlNet is missing ({folder}); run "
            f"`script/download-weights template controlnet-{control.value}` before building"
        )
    return folder


def mode_arguments(mode: Mode, request: GenerationRequest, control) -> dict:
    """What each diffusers pipeline takes beyond the prompt, steps, guidance and generator."""
    size = (request.width, request.height)
    image = request.image.convert("RGB").resize(size) if request.image is not None else None
    mask = request.mask.convert("L").resize(size) if request.mask is not None else None
    scale = {"controlnet_conditioning_scale": request.controlnet_conditioning_scale}
    strength = {"strength": request.prompt_strength}
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
