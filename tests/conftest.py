"""Fixtures shared by the whole suite: tiny weights and real photos, built offline once."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from buildkit.sample_photos import write_photo_zip
from buildkit.tiny_templates import write_template_weights


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory) -> Path:
    """A tiny random-weight SD1.5 pipeline in the base-weights/ layout."""
    from buildkit.tiny import write_sd15

    return write_sd15(tmp_path_factory.mktemp("tiny") / "sd15")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    """A tiny random-weight SDXL pipeline, with the real CLIP tokenizer for both encoders."""
    from buildkit.tiny import write_sdxl

    return write_sdxl(tmp_path_factory.mktemp("tiny") / "sdxl")


@pytest.fixture(scope="session")
def photo_zip(tmp_path_factory) -> Path:
    """Real photos (scikit-image's), landscape so crops matter, zipped in a folder."""
    return write_photo_zip(tmp_path_factory.mktemp("photos") / "photos.zip", size=(96, 72))


@pytest.fixture(scope="session")
def template_weights(tmp_path_factory):
    """template_weights(name, flag_everything=False) -> a template-weights/ folder, built once."""
    root = tmp_path_factory.mktemp("template-weights")
    built: dict[tuple[str, bool], Path] = {}

    def get(name: str, flag_everything: bool = False) -> Path:
        key = (name, flag_everything)
        if key not in built:
            folder = root / f"{name}{'-strict' if flag_everything else ''}"
            built[key] = write_template_weights(name, folder, flag_everything=flag_everything)
        return built[key]

    return get


@pytest.fixture(scope="session")
def trained_weights(tmp_path_factory, tiny_sd15, photo_zip) -> Path:
    """The trainer's own output.zip, unzipped: what the build step copies to /src/weights."""
    from trainer import job
    from trainer.config import TrainConfig

    work = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BASE_MODEL_DIR", str(tiny_sd15))
        patch.setenv("TRAINER_WORK_DIR", str(work / "work"))
        result = job.train(
            TrainConfig(
                instance_prompt="a photo of sks cat",
                class_prompt="a photo of a cat",
                instance_data=photo_zip,
                resolution=64,
                max_train_steps=2,
                num_class_images=1,
                checkpointing_steps=0,
            )
        )
    zipfile.ZipFile(result.output).extractall(work / "weights")
    return work / "weights"


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu run only where CUDA is (`make gpu-test`); elsewhere they are skipped."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: run `make gpu-test` on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def adapter_outputs(tmp_path_factory, tiny_sd15, photo_zip):
    """{"lora": AdapterOutput, "textual_inversion": ...}: trained on tiny_sd15, built once."""
    from tests.adapter_outputs import build

    return build(tmp_path_factory.mktemp("adapter-outputs"), tiny_sd15, photo_zip)
