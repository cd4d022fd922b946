"""Photos -> what the loop consumes: cached latent distributions, token ids, batches.

Latents are encoded once (as replicate/dreambooth does) and a fresh sample is drawn from the
cached distribution at every step, so caching changes speed, not the math. With `hflip`, the
mirrored photo is encoded too and each step picks one at random. The order of examples is a
pure function of (seed, epoch), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

ENCODE_BATCH = 4


def square_crop(image: Image.Image, resolution: int, center: bool, rng: random.Random):
    """Resize the shorter side to `resolution`, then crop a square (centred or random)."""
    scale = resolution / min(image.size)
    width, height = (max(resolution, round(side * scale)) for side in image.size)
    size = (width, height)
    image = image.resize(size, Image.Resampling.BICUBIC)
    if center:
        left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    else:
        left = rng.randint(0, image.width - resolution)
        top = rng.randint(0, image.height - resolution)
    return image.crop((left, top, left + resolution, top + resolution))


def to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def tokenize(tokenizer, captions: list[str], pad_tokens: bool) -> list[torch.Tensor]:
    """Token ids per caption: padded to 77 with `pad_tokens`, else as long as the caption."""
    ids = tokenizer(
        captions,
        padding="max_length" if pad_tokens else "do_not_pad",
        truncation=True,
        max_length=tokenizer.model_max_length,
    ).input_ids
    return [torch.tensor(row) for row in ids]


def pad_batch(rows: list[torch.Tensor], pad_id: int) -> torch.Tensor:
    length = max(len(row) for row in rows)
    batch = torch.full((len(rows), length), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    return batch


@torch.no_grad()
def encode(vae, pixels: torch.Tensor, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the VAE's latent distribution, float32 on `device`."""
    means, stds = [], []
    for start in range(0, len(pixels), ENCODE_BATCH):
        chunk = pixels[start : start + ENCODE_BATCH].to(device=device, dtype=dtype)
        dist = vae.encode(chunk).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
    return torch.cat(means), torch.cat(stds)


@dataclass
class ImageSet:
    """One kind of photo (instance or class): cached latents and token ids."""

    mean: torch.Tensor
    std: torch.Tensor
    flipped: tuple[torch.Tensor, torch.Tensor] | None
    input_ids: list[torch.Tensor]
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def sample(self, indices: list[int], generator: torch.Generator, scale: float) -> torch.Tensor:
        index = torch.tensor(indices, device=self.mean.device)
        mean, std = self.mean[index], self.std[index]
        if self.flipped is not None:
            flip = torch.rand(len(indices), generator=generator) < 0.5
            flip = flip.to(self.mean.device).view(-1, 1, 1, 1)
            mean = torch.where(flip, self.flipped[0][index], mean)
            std = torch.where(flip, self.flipped[1][index], std)
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        return (mean + std * noise) * scale


def build_image_set(
    images,
    captions,
    *,
    vae,
    tokenizer,
    resolution,
    center_crop,
    hflip,
    pad_tokens,
    seed,
    device,
    dtype,
) -> ImageSet:
    rng = random.Random(seed)
    crops = [square_crop(image, resolution, center_crop, rng) for image in images]
    pixels = torch.stack([to_tensor(c) for c in crops])
    mean, std = encode(vae, pixels, device, dtype)
    flipped = None
    if hflip:
        mirrored = torch.stack([to_tensor(ImageOps.mirror(c)) for c in crops])
        flipped = encode(vae, mirrored, device, dtype)
    ids = tokenize(tokenizer, captions, pad_tokens)
    return ImageSet(mean, std, flipped, ids, list(captions))


@dataclass
class Batch:
    latents: torch.Tensor
    input_ids: torch.Tensor
    n_instance: int  # the first n rows are instance photos, the rest class photos


@dataclass
class TrainingSet:
    instance: ImageSet
    prior: ImageSet | None
    pad_id: int
    latent_scale: float

    def __len__(self) -> int:
        return max(len(self.instance), len(self.prior) if self.prior else 0)

    def indices(
        self, micro_step: int, batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> list[int]:
        """Example indices for one micro-batch on one process: a pure function of its inputs."""
        global_batch = batch_size * world
        per_epoch = math.ceil(len(self) / global_batch)
        epoch, position = divmod(micro_step, per_epoch)
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed + epoch))
        start = position * global_batch + rank * batch_size
        return [int(order[(start + k) % len(self)]) for k in range(batch_size)]

    def batch(self, indices: list[int], generator: torch.Generator) -> Batch:
        rows = [i % len(self.instance) for i in indices]
        latents = self.instance.sample(rows, generator, self.latent_scale)
        ids = [self.instance.input_ids[i] for i in rows]
        if self.prior is not None:
            prior_rows = [i % len(self.prior) for i in indices]
            prior = self.prior.sample(prior_rows, generator, self.latent_scale)
            latents = torch.cat([latents, prior])
            ids += [self.prior.input_ids[i] for i in prior_rows]
        return Batch(latents, pad_batch(ids, self.pad_id), n_instance=len(rows))
