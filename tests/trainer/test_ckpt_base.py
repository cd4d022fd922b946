"""`ckpt_base`: start from a single-file .safetensors checkpoint, never from a pickle."""

import zipfile

import pytest
import torch
from diffusers import StableDiffusionPipeline

from core.errors import UserError
from core.manifest import Manifest
from tests.trainer import ldm_checkpoint
from tests.trainer.helpers import same, train, weights


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_sd15):
    """The tiny model, nudged so it differs from the base folder, in the original layout."""
    pipeline = StableDiffusionPipeline.from_pretrained(tiny_sd15)
    with torch.no_grad():
        for parameter in pipeline.unet.parameters():
            parameter.add_(0.05)
    return pipeline, ldm_checkpoint.write(
        pipeline, tmp_path_factory.mktemp("ckpt") / "mine.safetensors"
    )


def test_fixture_round_trips_through_diffusers_single_file_loader(checkpoint, tiny_sd15):
    pipeline, path = checkpoint
    loaded = StableDiffusionPipeline.from_single_file(
        str(path), config=str(tiny_sd15), local_files_only=True
    )
    assert same(loaded.unet.state_dict(), pipeline.unet.state_dict())


def test_training_starts_from_the_checkpoint(
    monkeypatch, tmp_path, tiny_sd15, photo_zip, checkpoint
):
    _, path = checkpoint
    from_base = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "a", learning_rate=1e-9)
    from_ckpt = train(
        monkeypatch, tiny_sd15, photo_zip, tmp_path / "b", learning_rate=1e-9, ckpt_base=path
    )
    assert not same(weights(from_base.output), weights(from_ckpt.output))
    with zipfile.ZipFile(from_ckpt.output) as archive:
        archive.extract("manifest.json", tmp_path / "m")
    assert Manifest.read(tmp_path / "m").base == "mine.safetensors"


def test_a_pickle_renamed_to_safetensors_is_refused(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    fake = tmp_path / "model.safetensors"
    torch.save({"state_dict": {}}, fake)
    with pytest.raises(UserError, match="pickle checkpoint"):
        train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "w", ckpt_base=fake)
