import json

import pytest

from core.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    Family,
    Manifest,
    ManifestError,
    Method,
    Part,
    identifier_token,
)


def manifest(**overrides) -> Manifest:
    values = dict(
        family="sd15",
        method="dreambooth",
        base="stable-diffusion-v1-5",
        instance_prompt="a photo of sks dog",
        token="sks",
        trained_parts=["unet", "text_encoder"],
    )
    values.update(overrides)
    return Manifest(**values)


def test_round_trips_through_json(tmp_path):
    original = manifest()
    original.write(tmp_path)
    loaded = Manifest.read(tmp_path)
    assert loaded == original
    assert loaded.family is Family.SD15 and loaded.method is Method.DREAMBOOTH
    assert loaded.trained_parts == (Part.UNET, Part.TEXT_ENCODER)
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["format_version"] == FORMAT_VERSION


def test_a_plain_diffusers_folder_has_no_manifest(tmp_path):
    assert Manifest.read(tmp_path) is None


def test_unknown_family_names_the_field_and_the_choices():
    with pytest.raises(ManifestError, match=r"family='sd3' is not one of sd15, sdxl"):
        manifest(family="sd3")


def test_a_newer_format_asks_for_a_newer_template(tmp_path):
    newer = {**manifest().to_dict(), "format_version": 99}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(newer))
    with pytest.raises(ManifestError, match="newer trainer"):
        Manifest.read(tmp_path)


def test_fields_from_a_newer_trainer_are_kept_not_rejected(tmp_path):
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**manifest().to_dict(), "lora_rank": 8}))
    assert Manifest.read(tmp_path).extra == {"lora_rank": 8}


def test_broken_json_names_the_file(tmp_path):
    (tmp_path / MANIFEST_FILE).write_text("{nope")
    with pytest.raises(ManifestError, match=MANIFEST_FILE):
        Manifest.read(tmp_path)


@pytest.mark.parametrize(
    ("instance", "klass", "token"),
    [
        ("a photo of sks dog", "a photo of a dog", "sks"),
        ("photo of zwx person", "photo of a person", "zwx"),
        ("a photo of sks dog", None, None),  # cannot tell which word is new
        ("a dog", "a dog", None),
    ],
)
def test_identifier_token_is_the_word_only_the_instance_prompt_has(instance, klass, token):
    assert identifier_token(instance, klass) == token
