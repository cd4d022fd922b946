"""The trainings API with the SDXL pair: trainer-sdxl and the sdxl template, both pushed by
script/push, a cog-sdxl training payload in, a version that generates out.

The SDXL trainer's output is a tar and an adapter (pivotal: a LoRA and two tokens), so the
build unpacks it and mounts the trainer's base-weights layer into the version.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.api.conftest import env_for, push
from tests.api.helpers import API, Files, token

TRAINING = dict(resolution=64, max_train_steps=2, train_batch_size=2, lr_warmup_steps=0, seed=1)


@pytest.fixture(scope="module")
def sdxl_stack(tmp_path_factory, registry, tiny_sdxl, template_weights, photo_zip):
    from buildkit import build_template

    root = tmp_path_factory.mktemp("sdxl-flow")
    env = env_for(root / "home", registry.url)
    context = build_template.build("sdxl", root / "ctx", None, template_weights("sdxl"))
    versions = {
        "trainer": push(env, "trainer-sdxl", "--base-weights", str(tiny_sdxl)),
        "template": push(env, "sdxl", "--context", str(context)),
    }
    (root / "files").mkdir()
    (root / "files" / "photos.zip").write_bytes(photo_zip.read_bytes())
    files = Files(root / "files")
    api = API(env, root, workers=1).start()
    yield dict(api=api, files=files, token=token(env, "dana"), **versions)
    api.stop()
    files.close()


def test_a_cog_sdxl_training_builds_a_version_of_the_sdxl_template_that_generates(sdxl_stack):
    client = sdxl_stack["api"].client(sdxl_stack["token"])
    payload = {
        "input": {"input_images": sdxl_stack["files"].url("photos.zip"), **TRAINING},
        "trainer_version": sdxl_stack["trainer"].removeprefix("sha256:"),
        "template_version": sdxl_stack["template"].removeprefix("sha256:"),
        "model": "dana/sdxl-subject",
    }
    done = client.wait(client.train(payload)["id"], timeout=600)
    assert done["status"] == "succeeded", f"{done['error']}\n{done['logs']}"
    assert [s["name"] for s in done["stages"]] == ["fetching", "training", "building"]
    inputs = {"prompt": "a photo of TOK", "width": 64, "height": 64, "num_inference_steps": 2}
    result = client.predict("dana/sdxl-subject", {**inputs, "refine": "base_image_refiner"})
    assert result["status"] == "succeeded", result.get("error")
    assert result["version"] == done["version"]
    image = Image.open(io.BytesIO(base64.b64decode(result["output"][0].split(",")[1])))
    assert image.size == (64, 64)


def test_a_trainer_and_a_template_of_other_families_are_refused_by_name(
    sdxl_stack, template_version
):
    from api.client import APIError

    client = sdxl_stack["api"].client(sdxl_stack["token"])
    payload = {
        "input": {"input_images": sdxl_stack["files"].url("photos.zip")},
        "trainer_version": sdxl_stack["trainer"],
        "template_version": template_version,  # vanilla: SD1.5
        "model": "dana/mismatch",
    }
    with pytest.raises(APIError) as caught:
        client.train(payload)
    assert caught.value.status == 422
    assert "serves SD1.5 and the trainer 'trainer-sdxl' trains SDXL" in str(caught.value.detail)
