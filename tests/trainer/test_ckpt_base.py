"""`ckpt_base`: start from a single-file .safetensors checkpoint, never from a pickle."""

import shutil
import zipfile

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

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


@pytest.mark.parametrize("upload_name", ["tmpk3jfile.bin", "tmpk3jfile"])
def test_a_checkpoint_uploaded_without_its_suffix_trains(
    monkeypatch, tmp_path, tiny_sd15, photo_zip, checkpoint, upload_name
):
    _, path = checkpoint
    upload = tmp_path / upload_name  # what a data URI with any mime type becomes
    shutil.copyfile(path, upload)
    renamed = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "a", ckpt_base=upload)
    named = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "b", ckpt_base=path)
    assert same(weights(renamed.output), weights(named.output))


def test_a_safetensors_without_unet_weights_is_named_as_such(
    monkeypatch, tmp_path, tiny_sd15, photo_zip
):
    wrong = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.zeros(2)}, wrong)
    with pytest.raises(UserError) as error:
        train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "w", ckpt_base=wrong)
    message = str(error.value)
    assert (
        "ckpt_base: lora.safetensors is missing the UNet weights of an SD1.5 checkpoint" in message
    )
    assert "lora_unet_down.weight" in message and str(tmp_path) not in message


def test_an_sdxl_checkpoint_is_refused_by_family(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    sdxl = tmp_path / "sdxl.safetensors"
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2),
            "conditioner.embedders.1.model.ln_final.weight": torch.zeros(2),
        },
        sdxl,
    )
    with pytest.raises(UserError, match=r"sdxl\.safetensors is an SDXL checkpoint"):
        train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "w", ckpt_base=sdxl)
