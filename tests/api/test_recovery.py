"""A training survives its worker: killed, the worker comes back and re-attaches; killed with the
training's own processes (a crash), it comes back and the trainer resumes from its checkpoint.
Either way the run ends with the step count of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3

import pytest

from tests.api.conftest import env_for
from tests.api.helpers import API, Files, token, wait_for, worker

STEPS = 8


@pytest.fixture(scope="module")
def service(tmp_path_factory, registry, photo_zip):
    root = tmp_path_factory.mktemp("recovery")
    env = env_for(root / "home", registry.url)
    (root / "files").mkdir()
    (root / "files" / "photos.zip").write_bytes(photo_zip.read_bytes())
    files = Files(root / "files")
    api = API(env, root).start()
    yield dict(root=root, env=env, api=api, files=files, token=token(env, "dana"))
    api.stop()
    files.close()


def row(service, training_id: str) -> dict:
    db = sqlite3.connect(service["root"] / "home" / "db.sqlite")
    db.row_factory = sqlite3.Row
    return dict(db.execute("SELECT * FROM trainings WHERE id = ?", (training_id,)).fetchone())


def kill_group(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def test_killing_the_worker_then_crashing_still_completes_every_step_once(
    service, trainer_version, template_version
):
    client = service["api"].client(service["token"])
    made = client.train(
        {
            "input": {
                "instance_prompt": "a photo of sks cat",
                "class_prompt": "a photo of a cat",
                "instance_data": service["files"].url("photos.zip"),
                "resolution": 64,
                "max_train_steps": STEPS,
                "checkpointing_steps": 2,
                "num_class_images": 1,
            },
            "trainer_version": trainer_version,
            "template_version": template_version,
            "model": "dana/cat",
        }
    )
    first = worker(service["env"], service["root"], "gpu-a", gpu="0")

    def logs() -> str:
        return client.training(made["id"])["logs"] or ""

    wait_for(lambda: "step 1/" in logs(), 300, "training under way")
    first.kill(group=True)  # the worker only: the training's processes are in their own session
    assert client.training(made["id"])["status"] == "processing"
    second = worker(service["env"], service["root"], "gpu-a", gpu="0")
    wait_for(lambda: "checkpoint saved at step 2" in logs(), 300, "the first checkpoint")
    assert row(service, made["id"])["attempts"] == 1  # re-attached: nothing was restarted
    assert "resuming" not in logs()

    state = row(service, made["id"])  # now a crash: the worker and the training's processes
    second.kill(group=True)
    kill_group(state["supervisor_pid"])
    kill_group(state["trainer_pid"])
    third = worker(service["env"], service["root"], "gpu-a", gpu="0")
    try:
        done = client.wait(made["id"], timeout=600)
    finally:
        third.stop()
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"]["steps"] == STEPS
    assert done["metrics"]["resumed_from_step"] in (2, 4, 6)
    assert (
        f"resuming from checkpoint at step {done['metrics']['resumed_from_step']}" in done["logs"]
    )
    assert row(service, made["id"])["attempts"] == 2
    # billed: the finished run plus the crashed one up to its last checkpoint, not beyond
    assert done["metrics"]["predict_time"] > 0
    assert done["version"].startswith("sha256:")
