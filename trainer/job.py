"""One training run, from a validated config to `output.zip`.

Everything a run writes stays under the work directory (`$TRAINER_WORK_DIR`, default `work/`):

    work/runs/<run id>/    photos, checkpoints, the exported folder, output.zip
    work/class-images/     generated class images, shared by runs with the same prompt and base

The run id is a hash of every input that changes the trained weights, the photos' bytes and the
base model, so starting the same run again in the same work directory resumes it from its last
checkpoint, while any change to what is learned starts afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.manifest import Family
from trainer import base_model, class_images, export, loop, retention
from trainer.accelerator import make_accelerator, weight_dtype
from trainer.checkpoints import CheckpointStore
from trainer.config import TrainConfig
from trainer.data import Encoders, TrainingSet, build_image_set
from trainer.families import side_for
from trainer.methods import make_method
from trainer.photos import load_archive

log = logging.getLogger(__name__)
# Inputs that only change what happens around training, not the weights it produces.
NOT_IN_RUN_ID = {
    "save_sample_prompt",
    "save_sample_negative_prompt",
    "n_save_sample",
    "save_guidance_scale",
    "save_infer_steps",
    "checkpointing_steps",
    "resume",
    "sample_batch_size",
}


def work_root() -> Path:
    return Path(os.environ.get("TRAINER_WORK_DIR", "work"))


def file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    return base_model.fingerprint_file(path)


def run_id(cfg: TrainConfig, base_fingerprint: str) -> str:
    """The base fingerprint already covers ckpt_base, which is hashed once."""
    values = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_RUN_ID}
    for name in ("instance_data", "class_data"):
        values[name] = file_digest(getattr(cfg, name))
    values["ckpt_base"] = cfg.ckpt_base is not None
    values["base"] = base_fingerprint
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Result:
    output: Path
    steps: int
    resumed_from: int
    summary: dict


def captions_for(photos, default: str, rewrite) -> list[str]:
    """Each photo's caption (or the instance prompt) as the method's model reads it."""
    return [rewrite(photo.caption or default) for photo in photos]


def encoders_for(base, side, accelerator) -> Encoders:
    """The VAE (placed for encoding) and the family's tokenizers, for build_image_set."""
    parts = base.components
    device, dtype = accelerator.device, weight_dtype(accelerator)
    parts["vae"].to(device=device, dtype=dtype)
    return Encoders(parts["vae"], side, parts, device, dtype)


def build_training_set(cfg, base, photos, prior_images, accelerator, method) -> TrainingSet:
    encoders = encoders_for(base, method.side, accelerator)
    rewrite = method.rewrite
    common = dict(
        encoders=encoders,
        resolution=cfg.resolution,
        center_crop=cfg.center_crop,
        hflip=cfg.hflip,
        pad_tokens=cfg.pad_tokens,
        seed=cfg.seed,
    )
    instance = build_image_set(
        [p.image for p in photos], captions_for(photos, cfg.instance_prompt, rewrite), **common
    )
    prior = None
    if prior_images:
        prior = build_image_set(prior_images, [cfg.class_prompt] * len(prior_images), **common)
    return TrainingSet(
        instance,
        prior,
        pad_ids=method.side.pad_ids(base.components),
        latent_scale=encoders.vae.config.scaling_factor,
    )


def prior_images(cfg, base, run_dir, accelerator, scratch: str) -> list:
    if not cfg.with_prior_preservation:
        return []
    user = []
    if cfg.class_data is not None:
        user = [
            p.image
            for p in load_archive(
                cfg.class_data,
                run_dir / f"class{scratch}",
                label="class_data",
                resolution=cfg.resolution,
            )
        ]
    images = class_images.class_images(
        wanted=cfg.num_class_images or len(user),
        user_images=user,
        class_prompt=cfg.class_prompt,
        base_fingerprint=base.fingerprint,
        resolution=cfg.resolution,
        batch_size=cfg.sample_batch_size,
        pipeline=base.pipeline,
        cache_root=work_root() / "class-images",
        device=accelerator.device,
        dtype=weight_dtype(accelerator),
    )
    if accelerator.is_main_process:
        policy = retention.Retention.from_env()
        current = (
            work_root()
            / "class-images"
            / class_images.cache_key(cfg.class_prompt, base.fingerprint, cfg.resolution)
        )
        retention.prune(current.parent, policy.keep_class_sets, policy.max_bytes, current)
    return images


def train(cfg: TrainConfig, callbacks: Sequence[loop.StepCallback] = ()) -> Result:
    """Train `cfg` to `output.zip`; `callbacks` see every optimizer step (tests, benches).

    However the run ends (success, error, cancel), only its checkpoints (for a resume) and
    its output.zip stay on disk; retention.py bounds how many runs keep even those.
    """
    base_ref = base_model.identify(base_model.base_model_dir(), cfg.ckpt_base, Family.SD15)
    run_dir = work_root() / "runs" / run_id(cfg, base_ref.fingerprint)
    accelerator = make_accelerator(cfg.mixed_precision, cfg.gradient_accumulation_steps)
    main = accelerator.is_main_process
    with retention.claim(run_dir) if main else contextlib.nullcontext():
        try:
            result = _train_in(run_dir, cfg, base_ref, accelerator, callbacks)
        finally:
            if main:
                remove_scratch(run_dir)
    if main:
        CheckpointStore(run_dir / "checkpoints").clear()  # finished: nothing to resume
    return result


def _train_in(run_dir: Path, cfg, base_ref, accelerator, callbacks) -> Result:
    main = accelerator.is_main_process
    # each process extracts on its own; the main one generates class images, the others reuse
    scratch = "" if main else f"-rank{accelerator.process_index}"
    if main:
        print(f"run {run_dir.name} on {accelerator.num_processes} process(es)", flush=True)
    photos = load_archive(
        cfg.instance_data,
        run_dir / f"instance{scratch}",
        label="instance_data",
        resolution=cfg.resolution,
    )
    if main:
        print(f"{len(photos)} instance photos", flush=True)
    base = base_model.load(base_ref, run_dir)
    with accelerator.main_process_first():
        prior = prior_images(cfg, base, run_dir, accelerator, scratch)
    method = make_method(cfg, base.components, side_for(base.spec))
    prepare_modules(cfg, base, method, accelerator)
    data = build_training_set(cfg, base, photos, prior, accelerator, method)
    base.components["vae"].to("cpu")  # latents are cached; needed again only for samples
    total = cfg.total_steps(len(data), accelerator.num_processes)
    store = CheckpointStore(run_dir / "checkpoints")
    if not cfg.resume and main:
        store.clear()
    accelerator.wait_for_everyone()
    result = loop.run(
        cfg, method, data, base.components["scheduler_train"], accelerator, store, total, callbacks
    )
    output = run_dir / "output.zip"
    if main:
        output = export.finish(cfg, base, method, accelerator, run_dir, total)
    return Result(output, result.steps, result.resumed_from, result.summary)


def prepare_modules(cfg, base, method, accelerator) -> None:
    """Let the method place its modules, then pick the attention kernel and checkpointing."""
    from diffusers import DDPMScheduler

    parts = base.components
    parts["scheduler_train"] = DDPMScheduler.from_config(parts["scheduler"].config)
    method.prepare(accelerator.device, weight_dtype(accelerator))
    if cfg.gradient_checkpointing:
        parts["unet"].enable_gradient_checkpointing()
        for name in method.text_encoders:
            if method.text_encoder_trains(name):
                parts[name].gradient_checkpointing_enable()
    if accelerator.device.type == "cuda" and _xformers_available():
        parts["unet"].enable_xformers_memory_efficient_attention()


def _xformers_available() -> bool:
    from diffusers.utils import is_xformers_available

    return is_xformers_available()


SCRATCH = ("instance*", "class*", "output", "ckpt_base.safetensors", "*.partial")


def remove_scratch(run_dir: Path) -> None:
    """Drop what a run needs only while it runs: extracted photos, the unzipped export."""
    for pattern in SCRATCH:
        for path in run_dir.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
