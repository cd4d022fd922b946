import random

import torch
from PIL import Image

from buildkit.clip_vocab import clip_tokenizer
from core.families import SD15, SDXL
from trainer.data import ImageSet, TrainingSet, View, pad_batch, plan_crop, square_crop
from trainer.families import side_for


def image_set(n: int) -> ImageSet:
    mean = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 4, 2, 2).clone()
    return ImageSet(
        View(mean, torch.zeros(n, 4, 2, 2)),
        None,
        [(torch.tensor([1, i]),) for i in range(n)],
        [f"c{i}" for i in range(n)],
        [],
    )


def tokenize(tokenizer, captions, pad_tokens):
    ids = side_for(SD15).tokenize({"tokenizer": tokenizer}, captions, pad_tokens)
    return [row[0] for row in ids]


def test_every_example_appears_once_per_epoch_in_a_seeded_order():
    data = TrainingSet(image_set(5), None, pad_ids=(0,), latent_scale=1.0)
    epoch0 = [data.indices(step, 1, seed=3)[0] for step in range(5)]
    epoch1 = [data.indices(step, 1, seed=3)[0] for step in range(5, 10)]
    assert sorted(epoch0) == sorted(epoch1) == [0, 1, 2, 3, 4]
    assert epoch0 != epoch1
    assert epoch0 == [data.indices(step, 1, seed=3)[0] for step in range(5)]  # pure function


def test_processes_get_disjoint_parts_of_the_global_batch():
    data = TrainingSet(image_set(8), None, pad_ids=(0,), latent_scale=1.0)
    rank0 = data.indices(0, 2, seed=1, rank=0, world=2)
    rank1 = data.indices(0, 2, seed=1, rank=1, world=2)
    assert not set(rank0) & set(rank1)


def test_class_rows_follow_instance_rows_in_a_batch():
    data = TrainingSet(image_set(2), image_set(3), pad_ids=(0,), latent_scale=1.0)
    batch = data.batch([1], torch.Generator().manual_seed(0))
    assert batch.n_instance == 1 and batch.latents.shape[0] == 2


def test_latents_are_sampled_from_the_cached_distribution_and_scaled():
    images = image_set(1)
    images.plain.std = torch.ones_like(images.plain.std)
    data = TrainingSet(images, None, pad_ids=(0,), latent_scale=2.0)
    a = data.batch([0], torch.Generator().manual_seed(0)).latents
    b = data.batch([0], torch.Generator().manual_seed(1)).latents
    assert not torch.equal(a, b)  # a fresh sample each step
    assert a.abs().max() > 0


def test_pad_tokens_pads_every_caption_to_77():
    tokenizer = clip_tokenizer()
    short = tokenize(tokenizer, ["a photo of sks dog"], pad_tokens=False)[0]
    padded = tokenize(tokenizer, ["a photo of sks dog"], pad_tokens=True)[0]
    assert short.tolist() == [49406, 320, 1125, 539, 48136, 1929, 49407]
    assert len(padded) == 77 and padded[:7].tolist() == short.tolist()


def test_batches_pad_to_the_longest_caption():
    batch = pad_batch([torch.tensor([1, 2, 3]), torch.tensor([4])], pad_id=9)
    assert batch.tolist() == [[1, 2, 3], [4, 9, 9]]


def test_center_crop_keeps_the_middle_and_random_crop_moves():
    image = Image.new("RGB", (200, 100))
    image.paste((255, 0, 0), (0, 0, 50, 100))  # red left quarter
    centred = square_crop(image, 64, center=True, rng=random.Random(0))
    assert centred.size == (64, 64) and centred.getpixel((0, 0)) != (255, 0, 0)
    offsets = {square_crop(image, 64, False, random.Random(s)).getpixel((0, 0)) for s in range(20)}
    assert (255, 0, 0) in {tuple(p) for p in offsets}


def test_sdxl_time_ids_are_original_size_crop_corner_and_target_size():
    crop = plan_crop((200, 100), 64, center=True, rng=random.Random(0))
    assert crop.original == (100, 200) and crop.resized == (128, 64)
    assert (crop.left, crop.top) == (32, 0)
    side = side_for(SDXL)
    assert side.time_ids(crop.original, (crop.top, crop.left), 64) == [100, 200, 0, 32, 64, 64]
    assert crop.mirrored().left == 128 - 32 - 64
    assert side_for(SD15).time_ids(crop.original, (0, 0), 64) == []


def test_sdxl_captions_get_ids_from_both_tokenizers_padded_to_77():
    from buildkit.tiny import clip_tokenizer_2

    parts = {"tokenizer": clip_tokenizer(), "tokenizer_2": clip_tokenizer_2()}
    (ids,) = side_for(SDXL).tokenize(parts, ["a photo of TOK"], pad_tokens=False)
    assert len(ids) == 2 and all(len(row) == 77 for row in ids)
    assert ids[0][-1] == 49407 and ids[1][-1] == 0  # SDXL's second tokenizer pads with "!"
