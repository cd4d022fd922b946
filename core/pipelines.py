"""The one inference engine behind every template.

The SD modules are loaded once (core/sd_modules.py, part by part, checked), for the family the
weights are (core/families.py: SD1.5 or SDXL, with its pipeline classes, text encoders and
default size). Each mode (txt2img,
img2img, inpaint, and the same three with a ControlNet) is a diffusers pipeline built once with
`from_pipe` over those same modules, so nothing is copied; each request gives its pipeline a
fresh scheduler, the only state a request can change, so nothing it sets outlives it.
(Building the pipelines per request cost 60 ms of a 0.33 s CPU request in `pipeline.to()`.)
Image i uses seed + i, one CPU generator per image: the same seed gives the same noise on any
device, and an image does not depend on how many were asked for. On a GPU the images of a
request run as one batch (core/fast_path.py); on a CPU they stream one by one as they are made.
SDXL adds the refiner (core/refiner.py), the invisible watermark (core/watermark.py) and, in
fp16, the fp16-fix VAE from template-weights/vae-fp16-fix (or diffusers' upcast of its own VAE
when that is absent), so that no request decodes to NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core import families, safety, watermark
from core.adapters import Adapters, AdapterWeights
from core.annotators import Annotator, load_annotator
from core.controls import ControlType
from core.errors import UserError, WeightsMissingError
from core.fast_path import COMPILE_CACHE, FastPath, device_and_dtype, load_compile_cache
from core.manifest import Family
from core.modes import CONTROL_MODES, STRENGTH_MODES, mode_arguments
from core.prompts import PromptEmbeddings, PromptEncoder
from core.refiner import Refiner
from core.requests import NO_REFINER, GenerationRequest, Mode
from core.schedulers import make_scheduler
from core.sd_modules import check_finite, load_modules
from core.weights import SDWeights

TEMPLATE_WEIGHTS_HINT = "Run `script/download-weights template NAME` again and rebuild."

log = logging.getLogger(__name__)
WARM_UP_STEPS = 2  # at the family's default size, which compiles first
FP16_VAE = "vae-fp16-fix"  # template-weights/: SDXL's VAE finetuned not to overflow in fp16


@dataclass(frozen=True)
class RequestPrompts:
    base: PromptEmbeddings
    refiner: PromptEmbeddings | None = None


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
    refiner: Refiner | None = None
    watermarker: object | None = None

    @property
    def spec(self) -> families.FamilySpec:
        return families.of(self.family)

    @classmethod
    def load(
        cls,
        weights: SDWeights,
        *,
        template_dir: Path,
        control: ControlType | None = None,
        adapter: AdapterWeights | None = None,
        template: str | None = None,
    ) -> Engine:
        import diffusers

        device, dtype = device_and_dtype()
        spec = weights.spec
        template_dir = Path(template_dir)
        modules = load_modules(weights, device, dtype)
        if spec.vae_overflows_in_fp16:
            modules["vae"] = _fp16_safe_vae(modules["vae"], template_dir, device, dtype)
        base = getattr(diffusers, spec.base_class)(**modules, **spec.pipeline_options)
        adapters = Adapters(base, spec, adapter)  # before the prompt encoder: it adds tokens
        prompts = PromptEncoder.for_pipeline(base, spec, adapters.rewrite)
        engine = cls(
            weights.family, base, prompts, adapters, dtype=dtype, fast=FastPath.from_env(device)
        )
        if spec.watermark:
            engine.watermarker = watermark.load()
        if spec.refiner:
            engine.refiner = Refiner.load(template_dir, base, spec, device, dtype)
        if control is not None:
            template = template or f"controlnet-{control.value}"
            engine.controlnet = _load_controlnet(template_dir, template, device, dtype)
            engine.annotator = load_annotator(
                control, template_dir / "annotator", device, template=template
            )
        engine.checker_dir = template_dir / "safety-checker"
        engine.checker = safety.load(engine.checker_dir, device, dtype)
        engine.speed_up(template_dir)
        return engine

    def speed_up(self, template_dir: Path) -> None:
        """Apply the fast path, build every mode's pipeline, and compile now if asked to."""
        denoisers = [self.base.unet, *([self.controlnet] if self.controlnet else [])]
        if self.fast.compiles:
            load_compile_cache(template_dir / COMPILE_CACHE)
        refiner = [self.refiner.pipeline.unet] if self.refiner else []  # formatted, not compiled
        self.fast.apply(formatted=[*denoisers, *refiner, self.base.vae], compiled=denoisers)
        if self.fast.batches:
            self.base.vae.enable_slicing()  # decode a batch one image at a time
        self.base.set_progress_bar_config(disable=True)
        self.scheduler_config = self.base.scheduler.config
        for name, class_name in self.spec.pipelines.items():
            mode = Mode(name)
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
        size = self.spec.default_size
        control = Image.new("RGB", (size, size))
        request = GenerationRequest(
            prompt="a photo",
            disable_safety_check=True,
            width=size,
            height=size,
            num_inference_steps=WARM_UP_STEPS,
            apply_watermark=False,
        )
        modes = [(Mode.TXT2IMG, None)] + ([(Mode.CONTROLNET, control)] if self.controlnet else [])
        embeddings = RequestPrompts(self.prompts(request.prompt, None))
        for mode, image in modes:
            arguments = mode_arguments(mode, request, image)
            pipeline = self.pipeline(mode, "DPMSolverMultistep")
            for seeds in ([0], [0, 1]) if self.fast.batches else ([0],):
                self._run(pipeline, request, embeddings, arguments, seeds)
        log.info("warmed up (compiled) at %dx%d", size, size)

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
        if request.refine != NO_REFINER and self.refiner is None:
            raise UserError(
                f"refine={request.refine} needs the refiner, and this template has none "
                f"({families.of(self.family).label} weights, no template-weights/refiner); use "
                "refine=no_refiner, or run `script/download-weights template sdxl` and rebuild"
            )
        if self.refiner is not None:
            self.refiner.check(request, self.pipelines.get(mode))
        pipeline = self.pipeline(mode, request.scheduler)
        with self.adapters.active(
            request.lora_weights, request.lora_scale, request.lora_input
        ) as lora:
            control = self.control(request) if mode in CONTROL_MODES else None
            if control is not None and request.return_processed_control:
                yield control
            _log_request(request)
            with self.adapters.text_encoder_scaled(lora):
                variant = self.adapters.prompt_variant(lora)
                texts = lora.rewrite(request.prompt), lora.rewrite(request.negative_prompt)
                embeddings = self.prompts(*texts, variant)
                refined = None
                if request.refine != NO_REFINER:
                    refined = self.prompts(*texts, variant, last_only=True)
            embeddings = RequestPrompts(embeddings, refined)
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

    def _run(
        self, pipeline, request, prompts: RequestPrompts, arguments, seeds
    ) -> list[Image.Image]:
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        marker = None
        if self.spec.watermark:
            marker = watermark.choose(self.watermarker, request.apply_watermark)
            pipeline.watermark = marker
        refine = request.refine != NO_REFINER
        images = pipeline(
            **prompts.base.arguments(),
            num_images_per_prompt=len(seeds),
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=generators,
            **(Refiner.handover(request) if refine else {"output_type": "np"}),
            **arguments,
        ).images
        if refine:
            images = self.refiner(request, images, prompts.refiner, generators, marker)
        return [to_image(array, seed) for array, seed in zip(images, seeds, strict=True)]


def _fp16_safe_vae(vae, template_dir: Path, device: str, dtype):
    """In fp16, template-weights/vae-fp16-fix when it is there; else the weights' own VAE, which
    diffusers' SDXL pipelines decode in float32 when its config says `force_upcast`."""
    import diffusers

    folder = template_dir / FP16_VAE
    if dtype != torch.float16 or not (folder / "config.json").is_file():
        if dtype == torch.float16 and not vae.config.force_upcast:
            vae.register_to_config(force_upcast=True)  # upcast rather than decode NaNs
        return vae
    fixed = diffusers.AutoencoderKL.from_pretrained(
        folder, dtype=dtype, use_safetensors=True, local_files_only=True
    ).to(device)
    check_finite(folder.parent, FP16_VAE, fixed, hint=TEMPLATE_WEIGHTS_HINT)
    log.info("fp16: decoding with %s/ instead of the weights' VAE", FP16_VAE)
    return fixed


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


def _load_controlnet(template_dir: Path, template: str, device: str, dtype):
    import diffusers

    folder = template_dir / "controlnet"
    if not (folder / "config.json").is_file():
        raise WeightsMissingError(
            f"the {template} template's ControlNet is missing (template-weights/controlnet); "
            f"run `script/download-weights template {template}` before building"
        )
    controlnet = diffusers.ControlNetModel.from_pretrained(
        folder, dtype=dtype, use_safetensors=True, local_files_only=True
    ).to(device)
    check_finite(folder.parent, "controlnet", controlnet, hint=TEMPLATE_WEIGHTS_HINT)
    return controlnet
