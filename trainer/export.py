"""The trained model -> `output.zip`, the contract the templates load from /src/weights.

output.zip of the full method (DreamBooth):
  model_index.json, unet/, text_encoder/, vae/, tokenizer/, scheduler/, feature_extractor/
                        diffusers `save_pretrained`, safetensors only, no safety checker
                        (templates ship their own)
output.zip of an adapter method (lora, textual_inversion, pivotal): no base weights, only
  pytorch_lora_weights.safetensors, lora_kohya.safetensors           (lora, pivotal)
  embeddings.safetensors, special_params.json                        (textual_inversion, pivotal)
and in every output.zip:
  manifest.json         core/manifest.py: format version, family, method, base (name and
                        fingerprint), prompt, token, trained parts, the adapter's files
  args.json             every input as resolved
  samples/0.png …       when save_sample_prompt is set
"""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import torch

from core.manifest import Adapter, Manifest

STORED_SUFFIXES = {".safetensors", ".png"}  # already dense: compressing costs time, saves ~0


def unwrap(accelerator, module: torch.nn.Module) -> torch.nn.Module:
    """The trained module as a plain module, in eval mode.

    `keep_fp32_wrapper=False` matters: under mixed precision accelerate wraps `forward` in
    autocast plus a cast of every output to fp32. Left in place, a UNet in a halved pipeline
    returns fp32 latents and the fp16 VAE fails ("Input type (float) and bias type (c10::Half)
    should be the same"), which is how GPU runs with samples crashed.
    """
    return accelerator.unwrap_model(module, keep_fp32_wrapper=False).eval()


def export_dtype(accelerator) -> torch.dtype:
    """The one dtype of the exported pipeline and of the samples.

    fp16 on a GPU (half the size of output.zip, and what every SD1.5 loader expects). On a CPU,
    bf16 when the run trained in bf16, so the halved export and sample path runs under CPU
    tests too; fp32 otherwise.
    """
    if accelerator.device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if accelerator.mixed_precision == "bf16" else torch.float32


def save_samples(
    pipeline,
    directory: Path,
    *,
    prompt: str,
    negative_prompt: str | None,
    count: int,
    guidance_scale: float,
    steps: int,
    resolution: int,
    seed: int,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        with torch.no_grad():
            image = pipeline(
                prompt,
                negative_prompt=negative_prompt,
                guidance_scale=guidance_scale,
                num_inference_steps=steps,
                height=resolution,
                width=resolution,
                generator=torch.Generator().manual_seed(seed + i),
            ).images[0]
        path = directory / f"{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def write_records(directory: Path, manifest: Manifest, args: dict) -> None:
    manifest.write(directory)
    (directory / "args.json").write_text(json.dumps(args, indent=2, sort_keys=True) + "\n")


def zip_folder(directory: Path, destination: Path) -> Path:
    partial = destination.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                dense = path.suffix in STORED_SUFFIXES
                method = zipfile.ZIP_STORED if dense else zipfile.ZIP_DEFLATED
                archive.write(path, path.relative_to(directory).as_posix(), compress_type=method)
    partial.replace(destination)
    return destination


def resolved_args(cfg, accelerator, total: int) -> dict:
    """Every input as the run used it: precision, step count and learning rates resolved."""
    args = cfg.to_dict()
    scale = cfg.lr_scale(accelerator.num_processes)
    args["mixed_precision"] = accelerator.mixed_precision
    args["max_train_steps"] = total
    for name in ("learning_rate", "lora_lr", "ti_lr"):
        if name in args:  # the SDXL trainer's UNet rate is unet_learning_rate (scale 1)
            args[name] = getattr(cfg, name) * scale
    return args


def tar_folder(directory: Path, destination: Path) -> Path:
    """As cog-sdxl's trained_model.tar: the files at the root, uncompressed."""
    partial = destination.with_suffix(".partial")
    with tarfile.open(partial, "w") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=path.relative_to(directory).as_posix())
    partial.replace(destination)
    return destination


def finish(
    cfg, base, method, accelerator, run_dir: Path, total: int, output: str = "output.zip"
) -> Path:
    """The trained model -> samples, the method's files, manifest.json, args.json -> the
    output archive: output.zip (the SD1.5 trainer), trained_model.tar (the SDXL trainer's)."""
    pipeline = base.pipeline
    for name, module in method.wrapped.items():
        setattr(pipeline, name, unwrap(accelerator, module))
    # One dtype for every module before sampling: under mixed precision the frozen modules
    # were halved while the trained ones stayed fp32.
    dtype = export_dtype(accelerator)
    pipeline.to(accelerator.device, dtype)
    folder = run_dir / "output"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if cfg.save_sample_prompt:
        save_samples(
            pipeline,
            folder / "samples",
            prompt=method.rewrite(cfg.save_sample_prompt),
            negative_prompt=cfg.save_sample_negative_prompt,
            count=cfg.n_save_sample,
            guidance_scale=cfg.save_guidance_scale,
            steps=cfg.save_infer_steps,
            resolution=cfg.resolution,
            seed=cfg.seed,
        )
    adapter = method.export(pipeline, folder, dtype)
    manifest = Manifest(
        family=base.family,
        method=method.method,
        base=base.name,
        base_fingerprint=base.fingerprint,
        instance_prompt=cfg.instance_prompt,
        token=cfg.new_token_word(),
        trained_parts=method.trained_parts(),
        resolution=cfg.resolution,
        adapter=Adapter(**adapter) if adapter else None,
    )
    write_records(folder, manifest, resolved_args(cfg, accelerator, total))
    pack = tar_folder if output.endswith(".tar") else zip_folder
    return pack(folder, run_dir / output)
