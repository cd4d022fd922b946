import json
import shutil

import pytest
import torch

from core.errors import WeightsMissingError
from core.manifest import Family
from core.sd_modules import load_modules
from core.weights import BrokenWeightsError, find, public, require
from tests.templates.broken_weights import BREAKAGES, assert_names_the_problem, broken_copy


def test_no_weights_means_template_mode_with_a_clear_message(tmp_path):
    assert find(tmp_path) is None
    assert find(tmp_path / "absent") is None
    with pytest.raises(WeightsMissingError, match=r"This is a template.*/src/weights"):
        require(find(tmp_path))


def test_a_plain_diffusers_folder_is_accepted_without_a_manifest(tiny_sd15):
    weights = find(tiny_sd15)
    assert weights.family is Family.SD15 and weights.manifest is None
    assert weights.default_prompt is None


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_each_broken_folder_is_refused_naming_the_folder_the_part_and_the_problem(
    breakage, trained_weights, tmp_path
):
    folder = broken_copy(trained_weights, breakage, tmp_path)
    with pytest.raises(BrokenWeightsError) as error:
        load_modules(find(folder), "cpu", torch.float32)
    assert_names_the_problem(str(error.value), breakage, [tmp_path, folder.parent])


def test_a_folder_with_files_but_no_model_index_says_so(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "unet").mkdir()
    with pytest.raises(BrokenWeightsError, match=r"weights/ cannot be used: model_index.json: is"):
        find(weights)


def test_a_missing_shard_is_named(tiny_sd15, tmp_path):
    folder = shutil.copytree(tiny_sd15, tmp_path / "weights")
    index = {"weight_map": {"conv_in.weight": "diffusion_pytorch_model-00001-of-00002.safetensors"}}
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps(index)
    )
    with pytest.raises(BrokenWeightsError, match=r"00001-of-00002.safetensors is missing"):
        find(folder)


def test_library_messages_lose_server_paths_and_reprs(tmp_path):
    weights = tmp_path / "weights"
    message = public(f"cannot open {weights}/unet/x.bin or /etc/y: torch.Size([4, 3])", weights)
    assert message == "cannot open weights/unet/x.bin or y: [4, 3]"


def test_without_a_manifest_the_default_prompt_comes_from_replicate_dreamboths_args_json(
    tiny_sd15, tmp_path
):
    folder = shutil.copytree(tiny_sd15, tmp_path / "old-output")
    (folder / "args.json").write_text(json.dumps({"instance_prompt": "a photo of cjw person"}))
    assert find(folder).default_prompt == "a photo of cjw person"
    (folder / "args.json").write_text("not json")
    assert find(folder).default_prompt is None
