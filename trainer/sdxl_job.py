"""One SDXL training run (cog-sdxl's): photos -> preprocessing -> pivotal tuning -> tar.

`trained_model.tar` holds, at its root, what cog-sdxl's predictor loads, what our templates
read, and copies that load elsewhere:

    lora.safetensors        cog-sdxl's LoRAAttnProcessor2_0 keys (is_lora=true)
    unet.safetensors        the whole fine-tuned UNet, diffusers keys (is_lora=false)
    embeddings.pti          {"text_encoders_0", "text_encoders_1"}: cog-sdxl's new tokens
    special_params.json     {"TOK": "<s0><s1>"}
    pytorch_lora_weights.safetensors, lora_kohya.safetensors   diffusers and kohya (is_lora)
    embeddings.safetensors  {"clip_l", "clip_g"}: Automatic1111, ComfyUI, load_textual_inversion
    manifest.json, args.json, samples/

Work directory, run id, resume, retention and the one loop are the SD1.5 trainer's
(trainer/job.py, trainer/loop.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from core.manifest import Family, Method
from trainer import base_model, export, job, loop, retention
from trainer.accelerator import make_accelerator
from trainer.checkpoints import CheckpointStore
from trainer.data import TrainingSet, build_image_set
from trainer.families import side_for
from trainer.methods.full import FullFineTune
from trainer.methods.lora import LoraLayers
from trainer.methods.pivotal import PivotalTuning
from trainer.photos import load_archive
from trainer.preprocess import prepare_photos
from trainer.sdxl_config import SDXLConfig

OUTPUT = "trained_model.tar"
NOT_IN_RUN_ID = {"save_sample_prompt", "checkpointing_steps", "resume", "verbose"}


def run_id(cfg: SDXLConfig, base_fingerprint: str) -> str:
    values = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_RUN_ID}
    values["input_images"] = job.file_digest(cfg.input_images)
    values["base"] = base_fingerprint
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def make_method(cfg: SDXLConfig, components: dict, side) -> PivotalTuning:
    if cfg.is_lora:
        other = LoraLayers(
            cfg.lora_rank, None, cfg.train_text_encoder, cfg.lora_lr, cfg.seed, side.text_encoders
        )
        return PivotalTuning(cfg, components, side, other)
    unet = FullFineTune(False, cfg.unet_learning_rate, side.text_encoders, unet_only_export=True)
    return PivotalTuning(cfg, components, side, unet, method=Method.DREAMBOOTH)


def train(cfg: SDXLConfig, callbacks: Sequence[loop.StepCallback] = ()) -> job.Result:
    base_ref = base_model.identify(base_model.base_model_dir(), None, Family.SDXL)
    run_dir = job.work_root() / "runs" / run_id(cfg, base_ref.fingerprint)
    accelerator = make_accelerator(cfg.mixed_precision, 1)
    main = accelerator.is_main_process
    with retention.claim(run_dir) if main else contextlib.nullcontext():
        try:
            result = _train_in(run_dir, cfg, base_ref, accelerator, callbacks)
        finally:
            if main:
                job.remove_scratch(run_dir)
    if main:
        CheckpointStore(run_dir / "checkpoints").clear()
    return result


def _train_in(run_dir: Path, cfg: SDXLConfig, base_ref, accelerator, callbacks) -> job.Result:
    scratch = "" if accelerator.is_main_process else f"-rank{accelerator.process_index}"
    photos = load_archive(
        cfg.input_images,
        run_dir / f"instance{scratch}",
        label="input_images",
        resolution=cfg.resolution,
    )
    print(f"{len(photos)} photos", flush=True)
    prepared = prepare_photos(photos, cfg)
    base = base_model.load(base_ref, run_dir)
    method = make_method(cfg, base.components, side_for(base.spec))
    job.prepare_modules(cfg, base, method, accelerator)
    images = build_image_set(
        [p.image for p in prepared],
        [method.rewrite(p.caption) for p in prepared],
        encoders=job.encoders_for(base, method.side, accelerator),
        resolution=cfg.resolution,
        center_crop=True,
        hflip=cfg.hflip,
        pad_tokens=True,
        seed=cfg.seed,
        masks=[p.mask for p in prepared] if any(p.mask for p in prepared) else None,
    )
    scale = base.components["vae"].config.scaling_factor
    data = TrainingSet(images, None, method.side.pad_ids(base.components), scale)
    base.components["vae"].to("cpu")
    total = cfg.total_steps(len(data), accelerator.num_processes)
    store = CheckpointStore(run_dir / "checkpoints")
    if not cfg.resume and accelerator.is_main_process:
        store.clear()
    accelerator.wait_for_everyone()
    result = loop.run(
        cfg, method, data, base.components["scheduler_train"], accelerator, store, total, callbacks
    )
    output = run_dir / OUTPUT
    if accelerator.is_main_process:
        output = export.finish(cfg, base, method, accelerator, run_dir, total, OUTPUT)
    return job.Result(output, result.steps, result.resumed_from, result.summary)
