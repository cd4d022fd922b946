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


@dataclass(frozen=True)
class Crop:
    """Where a photo's square came from: its original size, its resized size, the crop's corner.

    SDXL conditions on the original size and the crop's top-left corner (`add_time_ids`).
    """

    original: tuple[int, int]  # (height, width) as the photo came
    resized: tuple[int, int]  # (width, height) after the shorter side became the resolution
    left: int
    top: int
    size: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.left + self.size, self.top + self.size)

    def mirrored(self) -> Crop:
        """The same square of the horizontally mirrored photo."""
        left = self.resized[0] - self.left - self.size
        return Crop(self.original, self.resized, left, self.top, self.size)


def plan_crop(size: tuple[int, int], resolution: int, center: bool, rng: random.Random) -> Crop:
    """Resize the shorter side to `resolution`, then a square (centred or random)."""
    scale = resolution / min(size)
    width, height = (max(resolution, round(side * scale)) for side in size)
    if center:
        left, top = (width - resolution) // 2, (height - resolution) // 2
    else:
        left = rng.randint(0, width - resolution)
        top = rng.randint(0, height - resolution)
    return Crop((size[1], size[0]), (width, height), left, top, resolution)


def apply_crop(image: Image.Image, crop: Crop, resample=Image.Resampling.BICUBIC) -> Image.Image:
    return image.resize(crop.resized, resample).crop(crop.box)


def square_crop(image: Image.Image, resolution: int, center: bool, rng: random.Random):
    """Resize the shorter side to `resolution`, then crop a square (centred or random)."""
    return apply_crop(image, plan_crop(image.size, resolution, center, rng))


def to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


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


def mask_tensor(masks: list[Image.Image], crops: list[Crop], latent_size: int, mirror: bool):
    """Masks cropped like their photos, at the latents' size: [n, 1, h, w] in 0..1."""
    rows = []
    for mask, crop in zip(masks, crops, strict=True):
        square = apply_crop(mask.convert("L"), crop, Image.Resampling.BILINEAR)
        square = ImageOps.mirror(square) if mirror else square
        small = square.resize((latent_size, latent_size), Image.Resampling.BILINEAR)
        rows.append(torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0))
    return torch.stack(rows).unsqueeze(1)


@dataclass
class View:
    """One way each photo is seen (as it is, or mirrored): latents, masks, size conditioning."""

    mean: torch.Tensor
    std: torch.Tensor
    masks: torch.Tensor | None = None  # [n, 1, h, w] loss weights, at the latents' size
    time_ids: torch.Tensor | None = None  # [n, k] the family's size conditioning (SDXL)


@dataclass
class ImageSet:
    """One kind of photo (instance or class): cached latents, token ids, and how each was cut."""

    plain: View
    flipped: View | None
    input_ids: list[tuple[torch.Tensor, ...]]  # per photo, its ids from each tokenizer
    captions: list[str]
    crops: list[Crop]

    @property
    def mean(self) -> torch.Tensor:
        return self.plain.mean

    def __len__(self) -> int:
        return len(self.captions)

    def sample(self, indices: list[int], generator: torch.Generator, scale: float):
        """(latents, masks or None, time ids or None) of the rows, each drawn anew."""
        index = torch.tensor(indices, device=self.plain.mean.device)
        picked = [_rows(part, index) for part in _parts(self.plain)]
        if self.flipped is not None:
            flip = torch.rand(len(indices), generator=generator) < 0.5
            mirrored = [_rows(part, index) for part in _parts(self.flipped)]
            picked = [_choose(flip, b, a) for a, b in zip(picked, mirrored, strict=True)]
        mean, std, masks, time_ids = picked
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        return (mean + std * noise) * scale, masks, time_ids


def _parts(view: View) -> tuple:
    return (view.mean, view.std, view.masks, view.time_ids)


def _rows(tensor: torch.Tensor | None, index: torch.Tensor):
    return None if tensor is None else tensor[index.to(tensor.device)]


def _choose(flip: torch.Tensor, mirrored, plain):
    if plain is None:
        return None
    where = flip.to(plain.device).view(-1, *([1] * (plain.dim() - 1)))
    return torch.where(where, mirrored, plain)


@dataclass(frozen=True)
class Encoders:
    """What turns photos and captions into an ImageSet: the VAE, the family's tokenizers."""

    vae: object
    side: object  # trainer.families.FamilySide
    components: dict
    device: torch.device
    dtype: torch.dtype


def build_image_set(
    images,
    captions,
    *,
    encoders: Encoders,
    resolution,
    center_crop,
    hflip,
    pad_tokens,
    seed,
    masks=None,
) -> ImageSet:
    rng = random.Random(seed)
    crops = [plan_crop(image.size, resolution, center_crop, rng) for image in images]
    squares = [apply_crop(image, crop) for image, crop in zip(images, crops, strict=True)]
    plain = _view(encoders, squares, crops, masks, resolution, mirror=False)
    flipped = _view(encoders, squares, crops, masks, resolution, mirror=True) if hflip else None
    ids = encoders.side.tokenize(encoders.components, list(captions), pad_tokens)
    return ImageSet(plain, flipped, ids, list(captions), crops)


def _view(encoders: Encoders, squares, crops, masks, resolution: int, mirror: bool) -> View:
    seen = [ImageOps.mirror(c) for c in squares] if mirror else squares
    pixels = torch.stack([to_tensor(c) for c in seen])
    mean, std = encode(encoders.vae, pixels, encoders.device, encoders.dtype)
    view = View(mean, std)
    if masks is not None:
        view.masks = mask_tensor(masks, crops, mean.shape[-1], mirror).to(mean.device)
    placed = [c.mirrored() if mirror else c for c in crops]
    rows = [encoders.side.time_ids(c.original, (c.top, c.left), resolution) for c in placed]
    if rows and rows[0]:
        view.time_ids = torch.tensor(rows, dtype=torch.float32, device=mean.device)
    return view


@dataclass
class Batch:
    latents: torch.Tensor
    input_ids: tuple[torch.Tensor, ...]  # one [batch, tokens] tensor per tokenizer
    n_instance: int  # the first n rows are instance photos, the rest class photos
    masks: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None


@dataclass
class TrainingSet:
    instance: ImageSet
    prior: ImageSet | None
    pad_ids: tuple[int, ...]
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
        latents, masks, time_ids = self.instance.sample(rows, generator, self.latent_scale)
        ids = [self.instance.input_ids[i] for i in rows]
        if self.prior is not None:
            prior_rows = [i % len(self.prior) for i in indices]
            prior, prior_masks, prior_time_ids = self.prior.sample(
                prior_rows, generator, self.latent_scale
            )
            latents = torch.cat([latents, prior])
            masks = _join(masks, prior_masks)
            time_ids = None if time_ids is None else torch.cat([time_ids, prior_time_ids])
            ids += [self.prior.input_ids[i] for i in prior_rows]
        per_tokenizer = [
            pad_batch([row[k] for row in ids], pad) for k, pad in enumerate(self.pad_ids)
        ]
        return Batch(latents, tuple(per_tokenizer), len(rows), masks, time_ids)


def _join(masks, prior_masks):
    """Instance masks with the class photos' masks: both or neither."""
    if masks is None and prior_masks is None:
        return None
    if masks is None or prior_masks is None:
        raise ValueError("masks are given for instance photos or class photos, not both")
    return torch.cat([masks, prior_masks])
