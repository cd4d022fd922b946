"""Turn a user's `control_image` into what a ControlNet expects.

Loaded once per template (in `setup()`), from the template's own annotator folder:

    template-weights/annotator/   the lllyasviel/Annotators files the detector needs, side by side
                                  (ControlNetHED.pth, mlsd_large_512_fp32.pth, …)
    template-weights/annotator/upernet/   seg: a transformers UperNet saved in safetensors

Detectors come from controlnet_aux through their real `from_pretrained(<local dir>)`; their
`.pth` files are read by torch's weights-only loader (forced in core/__init__.py). Canny runs on
OpenCV and scribble needs no weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.controls import CONTROLS, AnnotatorKind, ControlType
from core.errors import UserError, WeightsMissingError
from core.requests import CANNY_THRESHOLD

DETECT_RESOLUTION = 512
# the controlnet_aux detector class of each annotator with weights (UperNet is transformers')
DETECTORS = {
    AnnotatorKind.MIDAS: "MidasDetector",
    AnnotatorKind.HED: "HEDdetector",
    AnnotatorKind.MLSD: "MLSDdetector",
    AnnotatorKind.NORMALBAE: "NormalBaeDetector",
    AnnotatorKind.OPENPOSE: "OpenposeDetector",
}


@dataclass
class Annotator:
    """A loaded annotator: `annotator(image, width=, height=, **params) -> RGB control image`."""

    kind: AnnotatorKind
    model: object = None
    detect_resolution: int = DETECT_RESOLUTION
    options: dict = field(default_factory=dict)

    def __call__(self, image: Image.Image, *, width: int, height: int, **params) -> Image.Image:
        image = image.convert("RGB")
        if self.kind in WITHOUT_WEIGHTS:  # on the image at the output's size
            result = WITHOUT_WEIGHTS[self.kind](image.resize((width, height)), **params)
        elif self.kind is AnnotatorKind.UPERNET:
            result = segment(self.model, image)
        else:
            result = self.model(
                image,
                detect_resolution=self.detect_resolution,
                image_resolution=max(width, height),
                output_type="pil",
                **self.options,
            )
        # a segmentation map is categorical: blending neighbours would invent colours
        nearest = self.kind is AnnotatorKind.UPERNET
        resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
        return result.convert("RGB").resize((width, height), resample)


def canny(image: Image.Image, low_threshold: int = 100, high_threshold: int = 200) -> Image.Image:
    import cv2

    CANNY_THRESHOLD.check("low_threshold", low_threshold)
    CANNY_THRESHOLD.check("high_threshold", high_threshold)
    if low_threshold > high_threshold:
        raise UserError(
            f"low_threshold ({low_threshold}) must not exceed high_threshold ({high_threshold})"
        )
    edges = cv2.Canny(np.asarray(image), low_threshold, high_threshold)
    return Image.fromarray(edges).convert("RGB")


def scribble(image: Image.Image, **_) -> Image.Image:
    """White strokes on black, whichever way round the user drew them."""
    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 127:  # a dark drawing on a light page
        grey = 255 - grey
    return Image.fromarray(grey).convert("RGB")


WITHOUT_WEIGHTS = {AnnotatorKind.CANNY: canny, AnnotatorKind.SCRIBBLE: scribble}


def segment(model, image: Image.Image) -> Image.Image:
    import torch
    from controlnet_aux.util import ade_palette

    network, processor = model
    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        logits = network(pixel_values=inputs.pixel_values.to(network.device)).logits
    labels = logits.argmax(dim=1)[0].cpu().numpy()
    palette = np.array(ade_palette(), dtype=np.uint8)
    return Image.fromarray(palette[labels % len(palette)])


def _require(
    directory: Path | None, files: tuple[str, ...], control: ControlType, template: str
) -> Path:
    missing = [f for f in files if directory is None or not (Path(directory) / f).is_file()]
    if missing:
        where = Path(directory) / missing[0] if directory else missing[0]
        raise WeightsMissingError(
            f"the {control.value} annotator needs {where}, which is missing; run "
            f"`script/download-weights template {template}` before building"
        )
    return Path(directory)


def _detector(kind: AnnotatorKind, directory: Path):
    import controlnet_aux as aux

    return getattr(aux, DETECTORS[kind]).from_pretrained(str(directory))


def load_annotator(
    control: ControlType,
    directory: Path | None,
    device: str = "cpu",
    detect_resolution: int = DETECT_RESOLUTION,
    template: str | None = None,
) -> Annotator:
    """The annotator of `control`; `template` names the template in what-to-download errors."""
    template = template or f"controlnet-{control.value}"
    spec = CONTROLS[control]
    kind = spec.annotator
    if kind in WITHOUT_WEIGHTS:
        return Annotator(kind)
    if kind is AnnotatorKind.UPERNET:
        from transformers import AutoImageProcessor, UperNetForSemanticSegmentation

        folder = _require(
            directory and Path(directory) / "upernet",
            ("config.json", "model.safetensors", "preprocessor_config.json"),
            control,
            template,
        )
        network = UperNetForSemanticSegmentation.from_pretrained(folder, use_safetensors=True)
        processor = AutoImageProcessor.from_pretrained(folder)
        return Annotator(kind, (network.to(device).eval(), processor))
    folder = _require(directory, spec.annotator_files, control, template)
    detector = _detector(kind, folder).to(device)
    return Annotator(kind, detector, detect_resolution)
