"""The trainer through Cog's real HTTP server, as `cog predict` / `cog train` send requests."""

import io
import shutil
import zipfile

import pytest

from buildkit.cog_client import CogServer, data_uri, decode_data_uri, succeeded
from core.manifest import Manifest
from tests.pipeline_check import generate

REQUEST = dict(
    instance_prompt="a photo of sks cat",
    class_prompt="a photo of a cat",
    resolution=64,
    max_train_steps=4,
    num_class_images=1,
    learning_rate=1e-4,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_sd15):
    work = tmp_path_factory.mktemp("server-work")
    return {
        "BASE_MODEL_DIR": str(tiny_sd15),
        "TRAINER_WORK_DIR": str(work),
        "COG_TEST_LOG_DIR": str(work),
    }


@pytest.fixture(scope="module")
def server(env):
    with CogServer("trainer", env=env) as running:
        yield running


def unzip(uri: str, into) -> Manifest:
    with zipfile.ZipFile(io.BytesIO(decode_data_uri(uri))) as archive:
        archive.extractall(into)
    return Manifest.read(into)


def test_prediction_returns_output_zip_that_diffusers_loads(server, photo_zip, tmp_path):
    status, body = server.predict(instance_data=data_uri(photo_zip, "application/zip"), **REQUEST)
    succeeded(status, body)
    assert body["output"].startswith("data:application/zip;base64,")
    manifest = unzip(body["output"], tmp_path / "weights")
    assert manifest.instance_prompt == "a photo of sks cat" and manifest.token == "sks"
    assert generate(tmp_path / "weights").size == (64, 64)
    assert body["metrics"]["steps"] == 4
    assert "step 4/4 | loss" in body["logs"]


def test_bad_inputs_get_422_naming_the_field(server):
    status, body = server.predict(
        instance_prompt="a sks cat",
        class_prompt="a cat",
        instance_data="data:application/zip;base64,UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==",
        lr_scheduler="warp",
        resolution=16,
    )
    assert status == 422
    assert {error["loc"][-1] for error in body["detail"]} == {"lr_scheduler", "resolution"}


def test_a_bad_archive_fails_with_its_name_and_the_server_keeps_serving(
    server, tmp_path, photo_zip
):
    text = tmp_path / "notes.txt"
    text.write_text("not photos")
    status, body = server.predict(instance_data=data_uri(text, "text/plain"), **REQUEST)
    assert status == 200 and body["status"] == "failed"
    assert "instance_data:" in body["error"] and "is not an archive" in body["error"]
    assert "Traceback" not in body["error"]
    assert server.settles_ready()


def test_a_training_returns_weights(env, photo_zip, tmp_path):
    with CogServer("trainer", env=env, mode="train") as training:
        status, body = training.train(
            instance_data=data_uri(photo_zip, "application/zip"), **{**REQUEST, "seed": 5}
        )
    succeeded(status, body)
    manifest = unzip(body["output"]["weights"], tmp_path / "weights")
    assert manifest.method.value == "dreambooth"


def test_an_unexpected_failure_reports_its_cause_and_the_last_log_lines(
    tmp_path, tiny_sd15, photo_zip
):
    broken = tmp_path / "base"
    shutil.copytree(tiny_sd15, broken)
    unet = broken / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[: unet.stat().st_size // 2])  # a broken base install
    env = {
        "BASE_MODEL_DIR": str(broken),
        "TRAINER_WORK_DIR": str(tmp_path / "work"),
        "COG_TEST_LOG_DIR": str(tmp_path),
    }
    with CogServer("trainer", env=env) as server:
        status, body = server.predict(
            instance_data=data_uri(photo_zip, "application/zip"), **REQUEST
        )
    assert status == 200 and body["status"] == "failed"
    error = body["error"]
    assert "RunFailedError" in error and "last log lines:" in error, error
    assert "4 instance photos" in error.split("last log lines:")[1]


@pytest.mark.parametrize(
    ("method", "files"),
    [
        ("lora", {"pytorch_lora_weights.safetensors", "lora_kohya.safetensors"}),
        ("textual_inversion", {"embeddings.safetensors", "special_params.json"}),
        (
            "pivotal",
            {
                "pytorch_lora_weights.safetensors",
                "lora_kohya.safetensors",
                "embeddings.safetensors",
                "special_params.json",
            },
        ),
    ],
)
def test_each_adapter_method_returns_a_small_output_zip(server, photo_zip, tmp_path, method, files):
    status, body = server.predict(
        instance_data=data_uri(photo_zip, "application/zip"),
        method=method,
        lora_rank=4,
        num_new_tokens=3,
        **REQUEST,
    )
    succeeded(status, body)
    manifest = unzip(body["output"], tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {*files, "manifest.json", "args.json"}
    assert manifest.method.value == method and manifest.is_adapter
    if "embeddings.safetensors" in files:
        assert manifest.adapter.tokens == ("<s0>", "<s1>", "<s2>")
        assert manifest.adapter.token_string == "sks"


def test_a_multi_token_initializer_is_refused_naming_the_input(server, photo_zip):
    status, body = server.predict(
        instance_data=data_uri(photo_zip, "application/zip"),
        method="textual_inversion",
        initializer_token="qwzxkvjpq",
        **REQUEST,
    )
    assert status == 200 and body["status"] == "failed"
    assert "initializer_token='qwzxkvjpq' is" in body["error"] and "tokens" in body["error"]
