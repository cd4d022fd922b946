"""Seed 000's payload end to end, through `script/push` and `script/serve api` as a user runs them.

The stack starts its own registry (nothing is configured), trains with the real trainer on tiny
weights, builds on the vanilla template, pushes a new version of the model, serves that version
to generate an image, and sends the signed webhook. The CLI then lists, shows and downloads it.

On the way the training loses its worker twice: first the worker alone is killed (the stack
starts it again and it re-attaches: nothing is redone), then the worker and the training's own
processes, as in a crash (it resumes from the trainer's last checkpoint). It still ends with the
step count of an uninterrupted run.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import zipfile

import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from api.client import data_uri
from buildkit.cog_client import free_port
from tests.api.conftest import env_for, push, seed_payload
from tests.api.helpers import API, REPO, Files, Receiver, token, wait_for

STEPS = 36
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


def row(stack, table: str, key: str, value: str) -> dict:
    db = sqlite3.connect(stack["root"] / "home" / "db.sqlite")
    db.row_factory = sqlite3.Row
    found = db.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,)).fetchone()
    return dict(found) if found else {}


def kill_group(pid: int | None) -> None:
    signal_group(pid, signal.SIGKILL)


def signal_group(pid: int | None, signum: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)


def kill_the_worker(stack) -> None:
    """SIGKILL the stack's worker and wait until the stack has started it again."""
    name = f"{socket.gethostname().split('.')[0].lower()}-0"
    old = row(stack, "workers", "name", name)["pid"]
    kill_group(old)
    wait_for(lambda: row(stack, "workers", "name", name)["pid"] != old, 60, "a new worker")


@pytest.fixture(scope="module")
def trained(stack):
    run = {**TINY_RUN, "max_train_steps": STEPS, "checkpointing_steps": 3}
    payload = seed_payload(
        stack["trainer"],
        stack["template"],
        stack["files"].url("person.zip"),
        stack["receiver"].url + "?training=seed",
        **run,
    )
    client = stack["api"].client(stack["token"])
    made = client.train(payload)

    def logs() -> str:
        return client.training(made["id"])["logs"] or ""

    wait_for(lambda: "step 1/" in logs(), 300, "training under way")
    # The trainer is paused (SIGSTOP) while its worker is away and before the crash: a quiet
    # machine trains these steps in seconds, and it must not finish before either event.
    trainer_pid = row(stack, "trainings", "id", made["id"])["trainer_pid"]
    signal_group(trainer_pid, signal.SIGSTOP)
    kill_the_worker(stack)  # the worker alone: the training's processes have their own session
    saved = logs().count("checkpoint saved")  # crash right after the next checkpoint
    signal_group(trainer_pid, signal.SIGCONT)
    wait_for(lambda: logs().count("checkpoint saved") > saved, 300, "a checkpoint")
    signal_group(trainer_pid, signal.SIGSTOP)
    seen = {
        "attempts_after_worker_kill": row(stack, "trainings", "id", made["id"])["attempts"],
        "logs_after_worker_kill": logs(),
    }
    state = row(stack, "trainings", "id", made["id"])  # then a crash: its processes too
    kill_the_worker(stack)
    kill_group(state["supervisor_pid"])
    kill_group(state["trainer_pid"])
    done = client.wait(made["id"], timeout=600)
    seen["attempts"] = row(stack, "trainings", "id", made["id"])["attempts"]
    return payload, made, done, seen


def test_the_seed_payload_trains_builds_and_pushes_a_version(stack, trained):
    payload, made, done, _ = trained
    assert done["status"] == "succeeded", f"{done['error']}\n{done['logs']}"
    assert done["input"] == payload["input"]
    assert done["metrics"]["steps"] == STEPS and done["metrics"]["predict_time"] > 0
    assert f"step {STEPS}/{STEPS}" in done["logs"]
    names = [s["name"] for s in done["stages"]]  # the crashed attempt's fetch, then the rest
    assert names == ["fetching", "fetching", "training", "building"]
    versions = stack["api"].client(stack["token"]).versions("yourusername/yourmodel")
    assert [v["id"] for v in versions] == [done["version"]]
    assert versions[0]["notes"] == "notes about this dreambooth training"
    assert versions[0]["training_id"] == made["id"]


def test_a_killed_worker_re_attaches_and_redoes_nothing(trained):
    *_, seen = trained
    assert seen["attempts_after_worker_kill"] == 1  # the same supervisor carried on
    assert "resuming" not in seen["logs_after_worker_kill"]


def test_after_a_crash_the_trainer_resumes_and_ends_with_every_step(trained):
    _, _, done, seen = trained
    assert seen["attempts"] == 2, "the crash came after the end: the training ran too fast"
    resumed = done["metrics"]["resumed_from_step"]
    assert 0 < resumed < STEPS and resumed % 3 == 0
    assert f"resuming from checkpoint at step {resumed}/{STEPS}" in done["logs"]
    assert done["metrics"]["steps"] == STEPS


def test_the_webhook_arrives_signed_with_the_seed_fields(stack, trained):
    _, made, done, _ = trained
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
    _, _, done, _ = trained
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
    image = Image.open(io.BytesIO(base64.b64decode(result["output"][0].split(",")[1])))
    assert image.size == (64, 64)
    assert "seed 3" in result["logs"]


def test_the_cli_lists_shows_downloads_and_predicts(stack, trained, tmp_path):
    _, made, done, _ = trained
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
    assert done["version"] in shown and f"step {STEPS}/{STEPS}" in shown
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
    wait_for(
        lambda: any(r["path"].endswith("bad") for r in stack["receiver"].received),
        30,
        "the failure webhook",
    )


def test_a_lora_training_builds_a_version_with_its_base_that_serves(stack):
    """An adapter output holds no base: the version carries the trainer's base-weights layer
    (without it, every prediction of the version would fail saying the base is missing)."""
    client = stack["api"].client(stack["token"])
    payload = seed_payload(
        stack["trainer"],
        stack["template"],
        stack["files"].url("person.zip"),
        stack["receiver"].url + "?training=lora",
        **TINY_RUN,
        method="lora",
    )
    payload["model"] = "yourusername/lora-model"
    done = client.wait(client.train(payload)["id"], timeout=600)
    assert done["status"] == "succeeded", f"{done['error']}\n{done['logs']}"
    inputs = {"width": 64, "height": 64, "num_inference_steps": 2, "seed": 3}
    result = client.predict("yourusername/lora-model", inputs)
    assert result["status"] == "succeeded", result.get("error")
    assert result["version"] == done["version"]
    assert Image.open(io.BytesIO(base64.b64decode(result["output"][0].split(",")[1]))).size == (
        64,
        64,
    )
