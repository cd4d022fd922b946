"""cog-sdxl's preprocessing, on maintained library models loaded from local folders.

    $PREPROCESS_WEIGHTS_DIR (default preprocess-weights/, /src/preprocess-weights in the image)
        blip/     captions         transformers BlipForConditionalGeneration
        clipseg/  subject masks    transformers CLIPSegForImageSegmentation (mask_target_prompts)
        face/     face masks       transformers OwlViTForObjectDetection, asked for faces
        swin2sr/  upscaling        transformers Swin2SRForImageSuperResolution

`script/download-weights preprocess` fetches them at build time; nothing is fetched at run time.
Each stage that lacks its model says so in a log line and degrades: captions fall back to
`caption_prefix`, masks to none (plain loss), upscaling to bicubic resizing. A caption from the
archive (captions.csv, name.txt) wins over BLIP's. Every photo gets exactly one mask, however
many faces are found (cog-sdxl appended one mask per face and misaligned the rest). With
`crop_based_on_salience` the square is centred on the mask's centre of mass.

Why OWL-ViT for faces: mediapipe >= 0.10.30 ships no face model (its tasks API downloads one),
and <= 0.10.21, which does, needs numpy < 2; OpenCV 5 dropped its Haar cascades; facenet-pytorch
ships MTCNN weights but pins torch < 2.3. OWL-ViT is in transformers, already ours, and is
loaded and tested like every other stage.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)
FACE_QUERY = "a photo of a human face"
FACE_THRESHOLD = 0.1
BATCH = 4


def weights_dir() -> Path:
    return Path(os.environ.get("PREPROCESS_WEIGHTS_DIR", "preprocess-weights"))


@dataclass
class Prepared:
    image: Image.Image  # square, centred on what matters
    mask: Image.Image | None  # "L", the same size; None: every pixel counts
    caption: str


def _load(stage: str, model_class: str, processor_class: str):
    """(model, processor) from weights_dir()/stage, or None with a log line saying why."""
    import transformers

    folder = weights_dir() / stage
    if not (folder / "config.json").is_file():
        log.warning(
            "preprocessing: no %s model in %s/ (run script/download-weights preprocess): %s",
            stage,
            folder.name,
            {
                "blip": "captions are caption_prefix alone",
                "clipseg": "no masks",
                "face": "no face masks",
                "swin2sr": "small photos are resized, not upscaled",
            }[stage],
        )
        return None
    model = getattr(transformers, model_class).from_pretrained(folder, local_files_only=True)
    processor = getattr(transformers, processor_class).from_pretrained(
        folder, local_files_only=True
    )
    return model.eval(), processor


@torch.no_grad()
def blip_captions(images: list[Image.Image]) -> list[str] | None:
    loaded = _load("blip", "BlipForConditionalGeneration", "BlipProcessor")
    if loaded is None:
        return None
    model, processor = loaded
    captions = []
    for start in range(0, len(images), BATCH):
        inputs = processor(images=images[start : start + BATCH], return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=30)
        captions += [processor.decode(row, skip_special_tokens=True).strip() for row in out]
    return captions


@torch.no_grad()
def clipseg_masks(images, prompt: str, temperature: float) -> list[Image.Image] | None:
    loaded = _load("clipseg", "CLIPSegForImageSegmentation", "CLIPSegProcessor")
    if loaded is None:
        return None
    model, processor = loaded
    masks = []
    for image in images:
        inputs = processor(text=[prompt], images=[image], padding=True, return_tensors="pt")
        raw = model(**inputs).logits
        logits = raw.reshape(1, 1, *raw.shape[-2:])
        probs = torch.sigmoid(logits / temperature)
        probs = probs / probs.max().clamp(min=1e-6)
        masks.append(_to_mask(probs[0, 0], image.size))
    return masks


def _to_mask(probs: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    array = (probs.clamp(0, 1).numpy() * 255).astype(np.uint8)
    return Image.fromarray(array, "L").resize(size, Image.Resampling.BILINEAR)


@torch.no_grad()
def face_boxes(images) -> list[list[tuple[float, float, float, float]]] | None:
    loaded = _load("face", "OwlViTForObjectDetection", "OwlViTProcessor")
    if loaded is None:
        return None
    model, processor = loaded
    found = []
    for image in images:
        inputs = processor(text=[[FACE_QUERY]], images=image, return_tensors="pt")
        outputs = model(**inputs)
        (result,) = processor.post_process_grounded_object_detection(
            outputs, threshold=FACE_THRESHOLD, target_sizes=[(image.height, image.width)]
        )
        found.append([tuple(float(v) for v in box) for box in result["boxes"]])
    return found


def face_mask(size: tuple[int, int], boxes) -> Image.Image:
    """One mask for one photo: every face found, as an ellipse (all of it when none is)."""
    if not boxes:
        return Image.new("L", size, 255)
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for left, top, right, bottom in boxes:
        draw.ellipse((min(left, right), min(top, bottom), max(left, right), max(top, bottom)), 255)
    return mask


def salient_square(image: Image.Image, mask: Image.Image | None, salience: bool):
    """The largest square, centred on the mask's centre of mass (or the photo's centre)."""
    side = min(image.size)
    cx, cy = image.width / 2, image.height / 2
    if salience and mask is not None:
        weights = np.asarray(mask, dtype=np.float64)
        if weights.sum() > 0:
            ys, xs = np.indices(weights.shape)
            cx, cy = (xs * weights).sum() / weights.sum(), (ys * weights).sum() / weights.sum()
    left = round(float(min(max(cx - side / 2, 0), image.width - side)))
    top = round(float(min(max(cy - side / 2, 0), image.height - side)))
    box = (left, top, left + side, top + side)
    return image.crop(box), (mask.crop(box) if mask is not None else None)


@torch.no_grad()
def upscale(images: list[Image.Image], resolution: int) -> list[Image.Image]:
    small = [i for i, image in enumerate(images) if image.width < resolution]
    if not small:
        return images
    loaded = _load("swin2sr", "Swin2SRForImageSuperResolution", "Swin2SRImageProcessor")
    if loaded is None:
        return images
    model, processor = loaded
    out = list(images)
    for i in small:
        image = images[i]
        while image.width < resolution:
            pixels = processor(image, return_tensors="pt").pixel_values
            scale = model.config.upscale
            result = model(pixel_values=pixels).reconstruction[0].clamp(0, 1)
            array = (result.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            image = Image.fromarray(array).crop((0, 0, image.width * scale, image.height * scale))
        log.info("preprocessing: photo %d upscaled to %dx%d by Swin2SR", i, *image.size)
        out[i] = image
    return out


def prepare_photos(photos, cfg) -> list[Prepared]:
    """Captions, masks, salient squares and upscaling: one Prepared per photo, in order."""
    images = [photo.image for photo in photos]
    masks: list[Image.Image | None] = [None] * len(images)
    if cfg.use_face_detection_instead:
        boxes = face_boxes(images)
        if boxes is not None:
            masks = [face_mask(im.size, b) for im, b in zip(images, boxes, strict=True)]
            faces = sum(len(b) for b in boxes)
            log.info("preprocessing: %d faces in %d photos, one mask each", faces, len(images))
    elif cfg.mask_target_prompts:
        found = clipseg_masks(images, cfg.mask_target_prompts, cfg.clipseg_temperature)
        masks = found if found is not None else masks
    squares = [
        salient_square(im, m, cfg.crop_based_on_salience)
        for im, m in zip(images, masks, strict=True)
    ]
    crops = upscale([image for image, _ in squares], cfg.resolution)
    square_masks = [
        None if m is None else m.resize(c.size, Image.Resampling.BILINEAR)
        for c, (_, m) in zip(crops, squares, strict=True)
    ]
    captions = _captions(photos, crops, cfg.caption_prefix)
    if cfg.verbose:
        for photo, caption in zip(photos, captions, strict=True):
            log.info("preprocessing: %s -> %r", photo.name, caption)
    return [Prepared(*row) for row in zip(crops, square_masks, captions, strict=True)]


def _captions(photos, images, prefix: str) -> list[str]:
    missing = [i for i, photo in enumerate(photos) if photo.caption is None]
    generated = blip_captions([images[i] for i in missing]) if missing else []
    captions = [photo.caption for photo in photos]
    for k, i in enumerate(missing):
        text = generated[k] if generated else ""
        captions[i] = (prefix + text).strip() or prefix.strip()
    return captions
