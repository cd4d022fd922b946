"""SDXL's refiner: its own UNet over the base's second text encoder and VAE, as in cog-sdxl.

template-weights/refiner/ is a diffusers StableDiffusionXLImg2ImgPipeline folder (its text
encoder and VAE are not loaded: the base's are shared). A request chooses with `refine`:

    no_refiner               the base alone
    expert_ensemble_refiner  the base denoises the first high_noise_frac of the schedule and
                             hands its latents over; the refiner denoises the rest
    base_image_refiner       the base denoises fully; the refiner runs img2img on its latents
                             (diffusers' default strength, 0.3, raised to one step when
                             needed) over refine_steps steps (default num_inference_steps)

The refiner's prompt embeddings are the second encoder's part of the base's (pooled too, from
the same compel cache), so TOK, the trained tokens and the weighting syntax work there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import signature
from pathlib import Path

from core.errors import UserError
from core.manifest import Family
from core.prompts import PromptEmbeddings
from core.requests import EXPERT_ENSEMBLE, GenerationRequest, at_least_one_step
from core.schedulers import make_scheduler
from core.sd_modules import load_modules
from core.weights import find

FOLDER = "refiner"
OWN_MODELS = ("unet",)
OWN_CONFIGS = ("scheduler",)
REFINE_STRENGTH = 0.3  # diffusers' (and so cog-sdxl's) img2img default for the refiner


@dataclass
class Refiner:
    pipeline: object
    scheduler_config: dict

    @classmethod
    def load(cls, template_dir: Path, base, spec, device: str, dtype) -> Refiner | None:
        """The refiner in template_dir/refiner over `base`'s shared modules; None without one."""
        import diffusers

        weights = find(
            Path(template_dir) / FOLDER,
            (Family.SDXL,),
            models=OWN_MODELS,
            configs=OWN_CONFIGS,
            refiner=True,
        )
        if weights is None:
            return None
        own = load_modules(weights, device, dtype)
        pipeline = getattr(diffusers, spec.pipelines["img2img"])(
            vae=base.vae,
            text_encoder=None,
            tokenizer=None,
            text_encoder_2=base.text_encoder_2,
            tokenizer_2=base.tokenizer_2,
            requires_aesthetics_score=True,
            **spec.pipeline_options,
            **own,
        )
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline, own["scheduler"].config)

    def check(self, request: GenerationRequest, pipeline) -> None:
        """An expert ensemble whose split leaves the base or the refiner no step is refused
        (diffusers would silently skip the refiner), counted on the request's own schedule, as
        is one in a mode whose pipeline cannot stop early (ControlNet img2img)."""
        if request.refine != EXPERT_ENSEMBLE:
            return
        if pipeline is not None and "denoising_end" not in signature(pipeline.__call__).parameters:
            raise UserError(
                f"refine={EXPERT_ENSEMBLE} does not work in {request.mode.value} mode (its "
                "pipeline cannot hand over part-way); use base_image_refiner"
            )
        scheduler = make_scheduler(request.scheduler, self.scheduler_config)
        scheduler.set_timesteps(request.num_inference_steps)
        total = scheduler.config.num_train_timesteps
        cutoff = round(total - request.high_noise_frac * total)  # as diffusers splits
        base = int((scheduler.timesteps >= cutoff).sum())
        if not 0 < base < len(scheduler.timesteps):
            who = "the base" if base == 0 else "the refiner"
            raise UserError(
                f"high_noise_frac={request.high_noise_frac} with num_inference_steps="
                f"{request.num_inference_steps} leaves {who} no denoising step; raise "
                "num_inference_steps or move high_noise_frac away from "
                f"{'0' if base == 0 else '1'}"
            )

    @staticmethod
    def handover(request: GenerationRequest) -> dict:
        """What the base's call takes when the refiner finishes its work."""
        end = (
            {"denoising_end": request.high_noise_frac} if request.refine == EXPERT_ENSEMBLE else {}
        )
        return {"output_type": "latent", **end}

    def __call__(self, request, latents, embeddings: PromptEmbeddings, generators, watermark):
        if request.refine == EXPERT_ENSEMBLE:
            steps, extra = request.num_inference_steps, {"denoising_start": request.high_noise_frac}
        else:  # at least one step, however few refine_steps
            steps = request.refine_steps or request.num_inference_steps
            extra = {"strength": at_least_one_step(REFINE_STRENGTH, steps)}
        self.pipeline.scheduler = make_scheduler(request.scheduler, self.scheduler_config)
        self.pipeline.watermark = watermark
        return self.pipeline(
            **embeddings.arguments(),
            image=latents,
            num_inference_steps=steps,
            guidance_scale=request.guidance_scale,
            num_images_per_prompt=len(latents),
            generator=generators,
            output_type="np",
            **extra,
        ).images
