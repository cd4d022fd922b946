"""Seed 000's payload end to end, through `script/push` and `script/serve api` as a user runs them.

The stack starts its own registry (nothing is configured), trains with the real trainer on tiny
weights, builds on the vanilla template, pushes a new version of the model, serves that version
to generate an image, and sends the signed webhook. The CLI then lists, shows and downloads it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from api.client import data_uri
from buildkit.cog_client import free_port
from tests.api.conftest import env_for, push, seed_payload
from tests.api.helpers import API, REPO, Files, Receiver, token

TINY_RUN = dict(resolution=64, max_train_steps=4, num_class_images=1, learning_rate=1e-4)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_sd15, vanilla_context, photo_zip):
    root = tmp_path_factory.mktemp("e2e")
    env = env_for(root / "home", "", DREAMBOOTH_REGISTRY_PORT=str(free_port()))
    env.pop("DREAMBOOTH_REGISTRY_URL")  # the flow's own command starts the registry
    trainer = push(env, "trainer", "--base-weights", str(tiny_sd15), "--notes", "tiny SD1.5")
    template = push(env, "vanilla", "--context", str(vanilla_context))
    (root / "files").mkdir()
    (root / "files" / "person.zip").write_bytes(photo_zip.read_bytes())
    (root / "files" / "notes.txt").write_text("not photos")
    files = Files(root / "files")
    api = API(env, root, workers=1).start()
    receiver = Receiver()
    state = dict(
        root=root,
        env=env,
        api=api,
        files=files,
        receiver=receiver,
        trainer=trainer,
        template=template,
        token=token(env, "yourusername"),
    )
    yield state
    receiver.close()
    api.stop()
    files.close()


@pytest.fixture(scope="module")
def trained(stack):
    payload = seed_payload(
        stack["trainer"],
        stack["template"],
        stack["files"].url("person.zip"),
        stack["receiver"].url + "?training=seed",
        **TINY_RUN,
    )
    client = stack["api"].client(stack["token"])
    made = client.train(payload)
    return payload, made, client.wait(made["id"], timeout=600)


def test_the_seed_payload_trains_builds_and_pushes_a_version(stack, trained):
    payload, made, done = trained
    assert done["status"] == "succeeded", f"{done['error']}\n{done['logs']}"
    assert done["input"] == payload["input"]
    assert done["metrics"]["steps"] == 4 and done["metrics"]["predict_time"] > 0
    assert "step 4/4" in done["logs"]
    assert [s["name"] for s in done["stages"]] == ["fetching", "training", "building"]
    versions = stack["api"].client(stack["token"]).versions("yourusername/yourmodel")
    assert [v["id"] for v in versions] == [done["version"]]
    assert versions[0]["notes"] == "notes about this dreambooth training"
    assert versions[0]["training_id"] == made["id"]


def test_the_webhook_arrives_signed_with_the_seed_fields(stack, trained):
    _, made, done = trained
    from tests.api.helpers import wait_for

    wait_for(lambda: stack["receiver"].received, 30, "the webhook")
    hook = stack["receiver"].received[0]
    assert hook["path"] == "/hook?training=seed"
    secret = stack["api"].client(stack["token"]).secret()
    body = Webhook(secret).verify(hook["body"], hook["headers"])
    assert body["id"] == made["id"] and body["status"] == "succeeded"
    assert body["version"] == done["version"] and body["model"] == "yourusername/yourmodel"
    assert body["notes"] == "notes about this dreambooth training"
    assert body["metrics"]["predict_time"] == done["metrics"]["predict_time"]
    assert {"created_at", "error", "input", "logs", "webhook_completed"} <= set(body)


def test_the_new_version_serves_and_generates(stack, trained):
    _, _, done = trained
    result = (
        stack["api"]
        .client(stack["token"])
        .predict(
            "yourusername/yourmodel",
            {"width": 64, "height": 64, "num_inference_steps": 2, "seed": 3},
        )
    )
    assert result["status"] == "succeeded", result.get("error")
    assert result["version"] == done["version"]
    image = Image.open(
        io.BytesIO(__import__("base64").b64decode(result["output"][0].split(",")[1]))
    )
    assert image.size == (64, 64)
    assert "a photo of a cjw person" in result["logs"]  # the template's default: the manifest's


def test_the_cli_lists_shows_downloads_and_predicts(stack, trained, tmp_path):
    _, made, done = trained
    env = {
        **stack["env"],
        "DREAMBOOTH_API_URL": stack["api"].url,
        "DREAMBOOTH_API_TOKEN": stack["token"],
    }

    def cli(*args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "api", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert made["id"] in cli("list") and "succeeded" in cli("list")
    shown = cli("status", made["id"], "--logs")
    assert done["version"] in shown and "step 4/4" in shown
    path = cli("download", made["id"], "-o", str(tmp_path / "w.zip")).strip()
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["instance_prompt"] == "a photo of a cjw person"
    images = cli(
        "predict",
        f"yourusername/yourmodel:{done['version']}",
        "-i",
        "width=64",
        "-i",
        "height=64",
        "-i",
        "num_inference_steps=2",
        "-o",
        str(tmp_path / "out"),
    )
    assert Image.open(images.strip().splitlines()[0]).size == (64, 64)


def test_a_bad_archive_fails_with_the_trainers_error_and_a_webhook(stack, tmp_path):
    client = stack["api"].client(stack["token"])
    notes = tmp_path / "notes.txt"
    notes.write_text("these are not photos")
    payload = seed_payload(
        stack["trainer"],
        stack["template"],
        data_uri(notes),
        stack["receiver"].url + "?training=bad",
        **TINY_RUN,
    )
    made = client.train(payload)
    assert made["input"]["instance_data"].endswith("(20 bytes)")  # bytes kept, not echoed
    done = client.wait(made["id"], timeout=600)
    assert done["status"] == "failed"
    assert "instance_data" in done["error"] and "is not an archive" in done["error"]
    assert "Traceback" not in done["error"] and str(stack["root"]) not in done["error"]
    from tests.api.helpers import wait_for

    wait_for(
        lambda: any(r["path"].endswith("bad") for r in stack["receiver"].received),
        30,
        "the failure webhook",
    )
