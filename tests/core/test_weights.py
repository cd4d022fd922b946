import json

import pytest

from core.errors import UserError, WeightsMissingError
from core.manifest import Family
from core.weights import find, require


def test_no_weights_means_template_mode_with_a_clear_message(tmp_path):
    assert find(tmp_path) is None
    with pytest.raises(WeightsMissingError, match=r"This is a template.*/src/weights"):
        require(find(tmp_path))


def test_a_plain_diffusers_folder_is_accepted_without_a_manifest(tiny_sd15):
    weights = find(tiny_sd15)
    assert weights.family is Family.SD15 and weights.manifest is None
    assert weights.default_prompt is None


def test_pickle_only_components_are_refused_by_name(tmp_path):
    (tmp_path / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
            }
        )
    )
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UserError, match=r"unet/diffusion_pytorch_model.bin is a pickle"):
        find(tmp_path)


def test_without_a_manifest_the_default_prompt_comes_from_replicate_dreamboths_args_json(
    tiny_sd15, tmp_path
):
    import shutil

    folder = shutil.copytree(tiny_sd15, tmp_path / "old-output")
    (folder / "args.json").write_text(json.dumps({"instance_prompt": "a photo of cjw person"}))
    assert find(folder).default_prompt == "a photo of cjw person"
    (folder / "args.json").write_text("not json")
    assert find(folder).default_prompt is None
