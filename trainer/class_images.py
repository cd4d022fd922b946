"""Class images for prior preservation: the user's `class_data` first, then generated ones.

Generated images are cached under `work/class-images/<key>/`, keyed by the class prompt, the
base model's fingerprint and the resolution, so a second run with the same prompt and base
reuses them instead of spending minutes regenerating. Image i always comes from seed key+i, so
topping up a partial cache gives the same images as generating them all at once. No safety
checker runs here: it blacks out benign class images (diffusers#811).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import torch
from PIL import Image

log = logging.getLogger(__name__)
GENERATION_STEPS = 50  # replicate/dreambooth's (the diffusers default)


def cache_key(class_prompt: str, base_fingerprint: str, resolution: int) -> str:
    text = f"{class_prompt}\0{base_fingerprint}\0{resolution}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _autocast(device: torch.device, dtype: torch.dtype):
    if device.type == "cuda" and dtype != torch.float32:
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def generate(
    pipeline,
    prompt: str,
    seeds: list[int],
    resolution: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
) -> list[Image.Image]:
    images = []
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        generators = [torch.Generator().manual_seed(s) for s in chunk]
        with _autocast(device, dtype), torch.no_grad():
            result = pipeline(
                [prompt] * len(chunk),
                height=resolution,
                width=resolution,
                num_inference_steps=GENERATION_STEPS,
                generator=generators,
            )
        images += result.images
        print(f"class images: {start + len(chunk)}/{len(seeds)} generated", flush=True)
    return images


def class_images(
    *,
    wanted: int,
    user_images: list[Image.Image],
    class_prompt: str,
    base_fingerprint: str,
    resolution: int,
    batch_size: int,
    pipeline,
    cache_root: Path,
    device: torch.device,
    dtype: torch.dtype,
) -> list[Image.Image]:
    """`wanted` class images: the user's first, the rest from the cache or generated."""
    images = list(user_images[:wanted])
    missing = wanted - len(images)
    if user_images:
        log.info("using %d class images from class_data", len(images))
    if missing <= 0:
        return images
    key = cache_key(class_prompt, base_fingerprint, resolution)
    folder = cache_root / key
    folder.mkdir(parents=True, exist_ok=True)
    os.utime(folder)  # the newest set in use: kept first (trainer/retention.py)
    paths = [folder / f"{i:05d}.png" for i in range(missing)]
    todo = [i for i, path in enumerate(paths) if not path.is_file()]
    if len(todo) < missing:
        print(f"reusing {missing - len(todo)} cached class images for {class_prompt!r}", flush=True)
    if todo:
        print(f"generating {len(todo)} class images for {class_prompt!r}", flush=True)
        seed_base = int(key[:8], 16)
        pipeline.to(device)
        made = generate(
            pipeline,
            class_prompt,
            [seed_base + i for i in todo],
            resolution,
            batch_size,
            device,
            dtype,
        )
        for i, image in zip(todo, made, strict=True):
            partial = paths[i].with_suffix(".partial.png")
            image.save(partial)
            partial.replace(paths[i])
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images
