"""Annotator weights with random values, for the real network classes, offline.

Each controlnet_aux detector has a fixed architecture (MiDaS DPT-hybrid, NormalBae's
EfficientNet-B5, OpenPose…), so "tiny" here means random weights of the real class, saved in
half precision under the default file names, so that `core.annotators.load_annotator` loads them
through the detector's real `from_pretrained(<local dir>)`. Seg gets a genuinely tiny UperNet.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch

from core.controls import CONTROLS, AnnotatorKind, ControlType


def _save(state: dict[str, torch.Tensor], path: Path) -> None:
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(half, path)


def _midas(directory: Path) -> None:
    from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel

    model = DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True)
    _save(model.state_dict(), directory / "dpt_hybrid-midas-501f0c75.pt")


def _hed(directory: Path) -> None:
    from controlnet_aux.hed import ControlNetHED_Apache2

    _save(ControlNetHED_Apache2().state_dict(), directory / "ControlNetHED.pth")


def _mlsd(directory: Path) -> None:
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large

    _save(MobileV2_MLSD_Large().state_dict(), directory / "mlsd_large_512_fp32.pth")


def _normalbae(directory: Path) -> None:
    from controlnet_aux.normalbae.nets.NNET import NNET

    args = types.SimpleNamespace(
        mode="client",
        architecture="BN",
        pretrained="scannet",
        sampling_ratio=0.4,
        importance_ratio=0.7,
    )
    torch.save(
        {
            "model": {
                k: v.half() if v.is_floating_point() else v
                for k, v in NNET(args).state_dict().items()
            }
        },
        directory / "scannet.pt",
    )


def _openpose(directory: Path) -> None:
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    # the released body/hand files name weights without the first module level
    for model, name in (
        (bodypose_model(), "body_pose_model.pth"),
        (handpose_model(), "hand_pose_model.pth"),
    ):
        state = {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
        _save(state, directory / name)
    _save(FaceNet().state_dict(), directory / "facenet.pth")


def _upernet(directory: Path) -> None:
    from transformers import (
        ConvNextConfig,
        SegformerImageProcessor,
        UperNetConfig,
        UperNetForSemanticSegmentation,
    )

    backbone = ConvNextConfig(
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 32, 64],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = UperNetConfig(
        backbone_config=backbone,
        hidden_size=16,
        num_labels=150,
        auxiliary_in_channels=32,
        use_auxiliary_head=False,
    )
    folder = directory / "upernet"
    UperNetForSemanticSegmentation(config).save_pretrained(folder, safe_serialization=True)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)


WRITERS = {
    AnnotatorKind.MIDAS: _midas,
    AnnotatorKind.HED: _hed,
    AnnotatorKind.MLSD: _mlsd,
    AnnotatorKind.NORMALBAE: _normalbae,
    AnnotatorKind.OPENPOSE: _openpose,
    AnnotatorKind.UPERNET: _upernet,
}


def write_annotator(control: ControlType, directory: Path, seed: int = 0) -> Path:
    """Random-weight annotator files for `control` in `directory` (nothing for canny/scribble)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = WRITERS.get(CONTROLS[control].annotator)
    if writer is not None:
        torch.manual_seed(seed)
        writer(directory)
    return directory
