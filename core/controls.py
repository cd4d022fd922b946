"""Every ControlNet control type as data: its checkpoint and its annotator.

One ControlNet path (core/pipelines.py) serves all of them; a template differs from another only
by the spec below. Checkpoints are the ControlNet 1.1 family, each paired with the annotator it
was trained with. `script/download-weights template controlnet-<type>` reads the hub ids and
file names from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

ANNOTATORS_REPO = "lllyasviel/Annotators"


class ControlType(str, Enum):
    CANNY = "canny"
    DEPTH = "depth"
    HED = "hed"
    MLSD = "mlsd"
    NORMAL = "normal"
    OPENPOSE = "openpose"
    SCRIBBLE = "scribble"
    SEG = "seg"


class AnnotatorKind(str, Enum):
    CANNY = "canny"  # OpenCV, no weights
    SCRIBBLE = "scribble"  # the user's drawing, normalised to white strokes on black
    MIDAS = "midas"
    HED = "hed"
    MLSD = "mlsd"
    NORMALBAE = "normalbae"
    OPENPOSE = "openpose"
    UPERNET = "upernet"  # transformers UperNet + the ADE20K palette


@dataclass(frozen=True)
class ControlSpec:
    control: ControlType
    controlnet_repo: str
    annotator: AnnotatorKind
    annotator_repo: str | None = None
    annotator_files: tuple[str, ...] = ()


CONTROLS: dict[ControlType, ControlSpec] = {
    spec.control: spec
    for spec in (
        ControlSpec(ControlType.CANNY, "lllyasviel/control_v11p_sd15_canny", AnnotatorKind.CANNY),
        ControlSpec(
            ControlType.DEPTH,
            "lllyasviel/control_v11f1p_sd15_depth",
            AnnotatorKind.MIDAS,
            ANNOTATORS_REPO,
            ("dpt_hybrid-midas-501f0c75.pt",),
        ),
        ControlSpec(
            ControlType.HED,
            "lllyasviel/control_v11p_sd15_softedge",
            AnnotatorKind.HED,
            ANNOTATORS_REPO,
            ("ControlNetHED.pth",),
        ),
        ControlSpec(
            ControlType.MLSD,
            "lllyasviel/control_v11p_sd15_mlsd",
            AnnotatorKind.MLSD,
            ANNOTATORS_REPO,
            ("mlsd_large_512_fp32.pth",),
        ),
        ControlSpec(
            ControlType.NORMAL,
            "lllyasviel/control_v11p_sd15_normalbae",
            AnnotatorKind.NORMALBAE,
            ANNOTATORS_REPO,
            ("scannet.pt",),
        ),
        ControlSpec(
            ControlType.OPENPOSE,
            "lllyasviel/control_v11p_sd15_openpose",
            AnnotatorKind.OPENPOSE,
            ANNOTATORS_REPO,
            ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
        ),
        ControlSpec(
            ControlType.SCRIBBLE, "lllyasviel/control_v11p_sd15_scribble", AnnotatorKind.SCRIBBLE
        ),
        ControlSpec(
            ControlType.SEG,
            "lllyasviel/control_v11p_sd15_seg",
            AnnotatorKind.UPERNET,
            "openmmlab/upernet-convnext-small",
        ),
    )
}
