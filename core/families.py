"""Every model family as data, read from the weights: the one place SD1.5 and SDXL differ.

A folder's family comes from its `model_index.json` (`_class_name`), never from a flag a user
could get wrong. Everything else that differs between families is a field of its `FamilySpec`:
the pipeline class of each mode, the text encoders and tokenizers (in order), whether the UNet
takes pooled text embeddings and `add_time_ids`, the default image size, the parts a complete
folder holds, and the ControlNet checkpoint of each control type. A third family is one more
spec here (and its trainer side in trainer/families/).

    spec = detect(Path("base-weights"))        # FamilySpec, or FamilyError naming the folder
    spec.pipelines["img2img"]                  # "StableDiffusionXLImg2ImgPipeline"
    spec.text_encoders                         # ("text_encoder", "text_encoder_2")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from core.controls import CONTROLS
from core.errors import UserError
from core.manifest import Family

MODEL_INDEX = "model_index.json"


class FamilyError(UserError):
    """A folder whose family cannot be told, or is not one we serve."""


@dataclass(frozen=True)
class FamilySpec:
    family: Family
    label: str  # how people name it: "SD1.5", "SDXL"
    pipelines: MappingProxyType  # mode (core.requests.Mode value) -> diffusers class name
    text_encoders: tuple[str, ...]  # component names, in the order their states are joined
    tokenizers: tuple[str, ...]  # one per text encoder, same order
    pooled: bool  # the UNet takes the last encoder's pooled (projected) embedding
    time_ids: bool  # the UNet takes add_time_ids (original size, crop, target size)
    default_size: int  # the resolution it was trained at
    hidden_layer: int  # which hidden state conditions the UNet: -1 the last, -2 the penultimate
    # the keys of a textual-inversion file, one per text encoder (same order)
    embedding_keys: tuple[str, ...] = ("emb_params",)
    controlnets: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    # what the txt2img pipeline's constructor takes beyond the modules
    pipeline_options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    watermark: bool = False  # its pipelines can apply the invisible watermark (SDXL's)
    refiner: bool = False  # a refiner can finish its images (template-weights/refiner)
    vae_overflows_in_fp16: bool = False  # decode with a fp16-fix VAE, or upcast (SDXL's)
    # model_index classes of folders of this family that are not the base (e.g. a refiner)
    other_classes: tuple[str, ...] = ()
    # key prefix that marks a single-file (original layout) checkpoint of this family
    checkpoint_marker: str = ""

    @property
    def base_class(self) -> str:
        return self.pipelines["txt2img"]

    @property
    def lora_modules(self) -> tuple[str, ...]:
        """The modules a LoRA of this family can hold layers of."""
        return ("unet", *self.text_encoders)

    @property
    def model_parts(self) -> tuple[str, ...]:
        """The parts with weights a complete folder holds."""
        return ("unet", "vae", *self.text_encoders)

    @property
    def config_parts(self) -> tuple[str, ...]:
        """The parts with only configs (and vocabularies)."""
        return (*self.tokenizers, "scheduler")


def _modes(prefix: str, inpaint: str, controlnet_prefix: str) -> MappingProxyType:
    return MappingProxyType(
        {
            "txt2img": f"{prefix}Pipeline",
            "img2img": f"{prefix}Img2ImgPipeline",
            "inpaint": inpaint,
            "controlnet": f"{controlnet_prefix}Pipeline",
            "controlnet_img2img": f"{controlnet_prefix}Img2ImgPipeline",
            "controlnet_inpaint": f"{controlnet_prefix}InpaintPipeline",
        }
    )


SD15 = FamilySpec(
    family=Family.SD15,
    label="SD1.5",
    pipelines=_modes(
        "StableDiffusion", "StableDiffusionInpaintPipeline", "StableDiffusionControlNet"
    ),
    text_encoders=("text_encoder",),
    tokenizers=("tokenizer",),
    pooled=False,
    time_ids=False,
    default_size=512,
    hidden_layer=-1,
    controlnets=MappingProxyType({c.value: s.controlnet_repo for c, s in CONTROLS.items()}),
    # the templates run their own checker (core/safety.py), after every mode
    pipeline_options=MappingProxyType(
        {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    ),
    checkpoint_marker="cond_stage_model.",
)
SDXL = FamilySpec(
    family=Family.SDXL,
    label="SDXL",
    pipelines=_modes(
        "StableDiffusionXL", "StableDiffusionXLInpaintPipeline", "StableDiffusionXLControlNet"
    ),
    text_encoders=("text_encoder", "text_encoder_2"),
    tokenizers=("tokenizer", "tokenizer_2"),
    pooled=True,
    time_ids=True,
    default_size=1024,
    hidden_layer=-2,
    embedding_keys=("clip_l", "clip_g"),  # the Automatic1111 / ComfyUI convention
    controlnets=MappingProxyType(
        {
            "canny": "diffusers/controlnet-canny-sdxl-1.0",
            "depth": "diffusers/controlnet-depth-sdxl-1.0",
        }
    ),
    pipeline_options=MappingProxyType({"add_watermarker": False}),  # per request instead
    watermark=True,
    refiner=True,
    vae_overflows_in_fp16=True,
    other_classes=("StableDiffusionXLImg2ImgPipeline",),  # the refiner's folder
    checkpoint_marker="conditioner.embedders.",
)
FAMILIES: dict[Family, FamilySpec] = {spec.family: spec for spec in (SD15, SDXL)}
BASE_CLASSES: dict[str, FamilySpec] = {spec.base_class: spec for spec in FAMILIES.values()}


def of(family: Family | str) -> FamilySpec:
    return FAMILIES[Family(family)]


def read_class_name(folder: Path) -> str:
    """`_class_name` of a folder's model_index.json; FamilyError when it cannot be read."""
    path = Path(folder) / MODEL_INDEX
    if not path.is_file():
        raise FamilyError(f"{Path(folder).name}/: {MODEL_INDEX} is missing")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FamilyError(f"{Path(folder).name}/{MODEL_INDEX}: not valid JSON ({error})") from None
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else ""


def detect(folder: Path, *, refiner: bool = False) -> FamilySpec:
    """The family of the diffusers folder `folder`, from its model_index.json.

    `refiner=True` also accepts a family's other pipeline folders (an SDXL refiner).
    """
    name = read_class_name(folder)
    if name in BASE_CLASSES:
        return BASE_CLASSES[name]
    if refiner:
        for spec in FAMILIES.values():
            if name in spec.other_classes:
                return spec
    allowed = ", ".join(f"{c} ({s.label})" for c, s in BASE_CLASSES.items())
    raise FamilyError(
        f"{Path(folder).name}/{MODEL_INDEX}: _class_name {name!r} is not a supported base; "
        f"expected one of {allowed}"
    )


def of_checkpoint(keys) -> FamilySpec | None:
    """The family a single-file checkpoint's tensor names belong to, when they tell."""
    for spec in sorted(FAMILIES.values(), key=lambda s: -len(s.text_encoders)):
        if any(key.startswith(spec.checkpoint_marker) for key in keys):
            return spec
    return None
