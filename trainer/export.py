"""The trained pipeline -> `output.zip`, the contract the templates load from /src/weights.

output.zip
  model_index.json, unet/, text_encoder/, vae/, tokenizer/, scheduler/, feature_extractor/
                        diffusers `save_pretrained`, safetensors only, no safety checker
                        (templates ship their own)
  manifest.json         core/manifest.py: format version, family, method, base, prompt, token
  args.json             every input as resolved
  samples/0.png …       when save_sample_prompt is set
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch

from core.manifest import Manifest

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


def write_folder(pipeline, directory: Path, manifest: Manifest, args: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(directory, safe_serialization=True)
    manifest.write(directory)
    (directory / "args.json").write_text(json.dumps(args, indent=2, sort_keys=True) + "\n")
    return directory


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
