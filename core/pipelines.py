"""The one inference engine behind every template.

The SD modules are loaded once (core/sd_modules.py, part by part, checked). Each mode (txt2img,
img2img, inpaint, and the same three with a ControlNet) is a diffusers pipeline built once with
`from_pipe` over those same modules, so nothing is copied; each request gives its pipeline a
fresh scheduler, the only state a request can change, so nothing it sets outlives it.
(Building the pipelines per request cost 60 ms of a 0.33 s CPU request in `pipeline.to()`.)
Image i uses seed + i, one CPU generator per image: the same seed gives the same noise on any
device, and an image does not depend on how many were asked for. On a GPU the images of a
request run as one batch (core/fast_path.py); on a CPU they stream one by one as they are made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core import safety
from core.adapters import Adapters, AdapterWeights
from core.annotators import Annotator, load_annotator
from core.controls import ControlType
from core.errors import UserError, WeightsMissingError
from core.fast_path import COMPILE_CACHE, FastPath, device_and_dtype, load_compile_cache
from core.manifest import Family
from core.prompts import PromptEncoder
from core.requests import GenerationRequest, Mode
from core.schedulers import make_scheduler
from core.sd_modules import check_finite, load_modules
from core.weights import SDWeights

TEMPLATE_WEIGHTS_HINT = "Run `script/download-weights template NAME` again and rebuild."

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
STRENGTH_MODES = {Mode.IMG2IMG, Mode.INPAINT, Mode.CONTROLNET_IMG2IMG, Mode.CONTROLNET_INPAINT}
WARM_UP = dict(width=512, height=512, num_inference_steps=2)  # the default size compiles first


@dataclass
class Engine:
    family: Family
    base: object  # the txt2img pipeline whose modules every mode shares
    prompts: PromptEncoder
    adapters: Adapters
    controlnet: object | None = None
    annotator: Annotator | None = None
    checker: safety.SafetyChecker | None = None
    checker_dir: Path | None = None
    dtype: torch.dtype = torch.float32
    fast: FastPath = field(default_factory=lambda: FastPath(frozenset()))
    pipelines: dict = field(default_factory=dict)
    scheduler_config: dict = field(default_factory=dict)  # the weights' own, never a request's

    @classmethod
    def load(
        cls,
        weights: SDWeights,
        *,
        template_dir: Path,
        control: ControlType | None = None,
        adapter: AdapterWeights | None = None,
    ) -> Engine:
        import diffusers

        device, dtype = device_and_dtype()
        pipeline_class = getattr(diffusers, PIPELINES[weights.family][Mode.TXT2IMG])
        base = pipeline_class(
            **load_modules(weights, device, dtype),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        adapters = Adapters(base, adapter)  # before the prompt encoder: it adds tokens
        prompts = PromptEncoder(base.tokenizer, base.text_encoder, rewrite=adapters.rewrite)
        engine = cls(
            weights.family, base, prompts, adapters, dtype=dtype, fast=FastPath.from_env(device)
        )
        template_dir = Path(template_dir)
        if control is not None:
            engine.controlnet = _load_controlnet(template_dir, control, device, dtype)
            engine.annotator = load_annotator(control, template_dir / "annotator", device)
        engine.checker_dir = template_dir / "safety-checker"
        engine.checker = safety.load(engine.checker_dir, device, dtype)
        engine.speed_up(template_dir)
        return engine

    def speed_up(self, template_dir: Path) -> None:
        """Apply the fast path, build every mode's pipeline, and compile now if asked to."""
        denoisers = [self.base.unet, *([self.controlnet] if self.controlnet else [])]
        if self.fast.compiles:
            load_compile_cache(template_dir / COMPILE_CACHE)
        self.fast.apply(formatted=[*denoisers, self.base.vae], compiled=denoisers)
        if self.fast.batches:
            self.base.vae.enable_slicing()  # decode a batch one image at a time
        self.base.set_progress_bar_config(disable=True)
        self.scheduler_config = self.base.scheduler.config
        for mode, class_name in PIPELINES[self.family].items():
            if mode not in CONTROL_MODES or self.controlnet is not None:
                self.pipelines[mode] = self._build(mode, class_name)
        if self.fast.compiles:
            self.warm_up()

    def _build(self, mode: Mode, class_name: str):
        import diffusers

        extra = {"controlnet": self.controlnet} if mode in CONTROL_MODES else {}
        if mode is Mode.TXT2IMG:
            return self.base
        # from_pipe casts to its `dtype` (float32 unless told): pass ours, or the shared fp16
        # modules would be upcast in place on a GPU.
        pipeline = getattr(diffusers, class_name).from_pipe(self.base, dtype=self.dtype, **extra)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def warm_up(self) -> None:
        """Compile during setup(), at the default size, rather than in the first request: one
        image, then two, after which torch compiles the batch dimension as dynamic."""
        control = Image.new("RGB", (WARM_UP["width"], WARM_UP["height"]))
        request = GenerationRequest(prompt="a photo", disable_safety_check=True, **WARM_UP)
        modes = [(Mode.TXT2IMG, None)] + ([(Mode.CONTROLNET, control)] if self.controlnet else [])
        embeddings = self.prompts(request.prompt, None)
        for mode, image in modes:
            arguments = mode_arguments(mode, request, image)
            pipeline = self.pipeline(mode, "DPMSolverMultistep")
            for seeds in ([0], [0, 1]) if self.fast.batches else ([0],):
                self._run(pipeline, request, embeddings, arguments, seeds)
        log.info("warmed up (compiled) at %dx%d", WARM_UP["width"], WARM_UP["height"])

    def pipeline(self, mode: Mode, scheduler: str):
        """The mode's pipeline with a fresh scheduler of kind `scheduler`."""
        if mode not in self.pipelines:
            raise UserError("control_image needs a ControlNet template; this one has none")
        pipeline = self.pipelines[mode]
        pipeline.scheduler = make_scheduler(scheduler, self.scheduler_config)
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
        with self.adapters.active(request.lora_weights, request.lora_scale) as lora:
            control = self.control(request) if mode in CONTROL_MODES else None
            if control is not None and request.return_processed_control:
                yield control
            _log_request(request)
            with self.adapters.text_encoder_scaled(lora):
                variant = self.adapters.prompt_variant(lora)
                embeddings = self.prompts(request.prompt, request.negative_prompt, variant)
            arguments = {**mode_arguments(mode, request, control), **lora.pipeline_arguments()}
            yield from self._kept_images(pipeline, request, embeddings, arguments)

    def _kept_images(self, pipeline, request, embeddings, arguments) -> Iterator[Image.Image]:
        seeds = [request.seed + i for i in range(request.num_outputs)]
        batches = [seeds] if self.fast.batches else [[seed] for seed in seeds]
        kept = 0
        for batch in batches:
            images = self._run(pipeline, request, embeddings, arguments, batch)
            flags = [False] * len(images)
            if not request.disable_safety_check:
                flags = self.checker.flags(images)
            for seed, image, flagged in zip(batch, images, flags, strict=True):
                if flagged:
                    index = seed - request.seed
                    print(
                        f"image {index} (seed {seed}) was flagged by the safety checker and "
                        "dropped",
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

    def _run(self, pipeline, request, embeddings, arguments, seeds) -> list[Image.Image]:
        positive, negative = embeddings
        output = pipeline(
            prompt_embeds=positive,
            negative_prompt_embeds=negative,
            num_images_per_prompt=len(seeds),
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=[torch.Generator().manual_seed(seed) for seed in seeds],
            output_type="np",
            **arguments,
        )
        return [to_image(array, seed) for array, seed in zip(output.images, seeds, strict=True)]


def to_image(array: np.ndarray, seed: int) -> Image.Image:
    """An image in [0, 1] as PIL; one that came out NaN (black, once converted) is an error."""
    if not np.isfinite(array).all():
        raise UserError(
            f"the image for seed {seed} came out as NaN (it would be black): the computation "
            "overflowed. Try another seed or size; if every image does this, the weights are "
            "broken"
        )
    return Image.fromarray((array * 255).round().astype("uint8"))


def _log_request(request: GenerationRequest) -> None:
    log.info("mode %s, seed %d (image i uses seed + i)", request.mode.value, request.seed)
    print(f"Using seed: {request.seed}", flush=True)
    if request.mode in STRENGTH_MODES and request.denoising_strength != request.prompt_strength:
        log.info(
            "prompt_strength %s x num_inference_steps %d is less than one denoising step; "
            "running one (strength %.4g)",
            request.prompt_strength,
            request.num_inference_steps,
            request.denoising_strength,
        )


def _load_controlnet(template_dir: Path, control: ControlType, device: str, dtype):
    import diffusers

    folder = template_dir / "controlnet"
    if not (folder / "config.json").is_file():
        raise WeightsMissingError(
            f"the controlnet-{control.value} template's ControlNet is missing (template-weights/"
            f"controlnet); run `script/download-weights template controlnet-{control.value}` "
            "before building"
        )
    controlnet = diffusers.ControlNetModel.from_pretrained(
        folder, dtype=dtype, use_safetensors=True, local_files_only=True
    ).to(device)
    check_finite(folder.parent, "controlnet", controlnet, hint=TEMPLATE_WEIGHTS_HINT)
    return controlnet


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
