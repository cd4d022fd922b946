"""The flow around the trainer: webhooks, failures at each step, cancel, restarts.

A quick trainer version (tests/api/quick_trainer) stands in for the real one, which
test_end_to_end.py runs; everything else is real: the API, a worker on huey's SQLite queue,
the registry (this module's own, so it can be stopped), coglet, the webhook receiver.
"""

from __future__ import annotations

import json

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from api.registry import Registry
from api.registry_server import LocalRegistry
from buildkit.cog_client import free_port
from tests.api.conftest import env_for, push
from tests.api.helpers import API, Files, Receiver, token, wait_for, worker


@pytest.fixture(scope="module")
def flow(tmp_path_factory, quick_context, vanilla_context):
    root = tmp_path_factory.mktemp("flow")
    registry = LocalRegistry(root / "registry", free_port()).start()
    env = env_for(root / "home", registry.url, DREAMBOOTH_WEBHOOK_ATTEMPTS="4")
    versions = {
        "trainer": push(env, "trainer", "--context", str(quick_context), "--repository", "cog/q"),
        "template": push(env, "vanilla", "--context", str(vanilla_context)),
    }
    (root / "files").mkdir()
    files = Files(root / "files")
    api = API(env, root).start()
    work = worker(env, root, "flow-0")
    state = dict(
        root=root,
        env=env,
        registry=registry,
        api=api,
        worker=work,
        files=files,
        token=token(env, "carol"),
        **versions,
    )
    yield state
    work.stop()
    api.stop()
    files.close()
    registry.stop()


def start(flow, name: str, webhook: str | None = None, **inputs) -> dict:
    (flow["root"] / "files" / f"{name}.txt").write_text(f"{name}\n")
    body = {
        "input": {"instance_data": flow["files"].url(f"{name}.txt"), **inputs},
        "trainer_version": flow["trainer"],
        "template_version": flow["template"],
        "model": "carol/thing",
        "notes": f"notes for {name}",
    }
    if webhook:
        body["webhook_completed"] = webhook
    return flow["api"].client(flow["token"]).train(body)


def finished(flow, training_id: str, timeout: float = 90) -> dict:
    return flow["api"].client(flow["token"]).wait(training_id, timeout=timeout)


def test_a_training_builds_a_version_and_sends_one_signed_webhook(flow):
    receiver = Receiver()
    made = start(flow, "ok", webhook=receiver.url + "?run=ok", steps=3)
    done = finished(flow, made["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["version"].startswith("sha256:") and "step 3/3" in done["logs"]
    wait_for(lambda: receiver.received, 20, "the webhook")
    hook = receiver.received[0]
    assert hook["path"] == "/hook?run=ok"
    secret = flow["api"].client(flow["token"]).secret()
    payload = Webhook(secret).verify(hook["body"], hook["headers"])
    assert payload["id"] == made["id"] and payload["status"] == "succeeded"
    assert payload["version"] == done["version"] and payload["model"] == "carol/thing"
    assert payload["metrics"]["predict_time"] > 0 and payload["notes"] == "notes for ok"
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(hook["body"].replace(b"succeeded", b"failed"), hook["headers"])
    deliveries = flow["api"].client(flow["token"]).deliveries(made["id"])
    assert [d["status"] for d in deliveries] == ["delivered"]
    receiver.close()


def test_a_webhook_receiver_down_then_up_gets_the_same_message_after_retries(flow):
    port = free_port()
    made = start(flow, "late-receiver", webhook=f"http://127.0.0.1:{port}/hook")
    assert finished(flow, made["id"])["status"] == "succeeded"
    client = flow["api"].client(flow["token"])
    wait_for(lambda: len(client.deliveries(made["id"])[0]["attempts"]) >= 2, 30, "two attempts")
    receiver = Receiver(port)
    wait_for(lambda: receiver.received, 30, "the webhook after retries")
    wait_for(lambda: client.deliveries(made["id"])[0]["status"] == "delivered", 10, "recorded")
    delivery = client.deliveries(made["id"])[0]
    attempts = delivery["attempts"]
    assert all(a["error"] for a in attempts[:-1]) and attempts[-1]["status_code"] == 200
    assert receiver.received[0]["headers"]["webhook-id"] == delivery["id"]
    receiver.close()


def test_a_receiver_that_keeps_failing_is_retried_with_backoff_then_given_up(flow):
    receiver = Receiver()
    receiver.answer = 500
    made = start(flow, "refused", webhook=receiver.url)
    finished(flow, made["id"])
    client = flow["api"].client(flow["token"])
    wait_for(lambda: client.deliveries(made["id"])[0]["status"] == "failed", 40, "giving up")
    attempts = client.deliveries(made["id"])[0]["attempts"]
    assert len(attempts) == 4 == len(receiver.received)
    assert {r["headers"]["webhook-id"] for r in receiver.received} == {
        client.deliveries(made["id"])[0]["id"]
    }
    bodies = {r["body"] for r in receiver.received}
    assert len(bodies) == 1  # byte for byte the same message
    gaps = [b["at"] for b in attempts]
    assert gaps == sorted(gaps)
    receiver.close()


def test_a_failing_trainer_ends_failed_with_its_error_and_a_webhook(flow):
    receiver = Receiver()
    made = start(flow, "fails", webhook=receiver.url, fail=True)
    done = finished(flow, made["id"])
    assert done["status"] == "failed" and done["version"] is None
    assert "the trainer failed" in done["error"] and "asked to fail" in done["error"]
    wait_for(lambda: receiver.received, 20, "the webhook")
    assert receiver.bodies()[0]["status"] == "failed"
    assert receiver.bodies()[0]["error"] == done["error"]
    receiver.close()


def test_an_input_url_that_answers_404_fails_naming_the_field(flow):
    body_url = flow["files"].url("missing.zip")
    client = flow["api"].client(flow["token"])
    made = client.train(
        {
            "input": {"instance_data": body_url},
            "trainer_version": flow["trainer"],
            "template_version": flow["template"],
            "model": "carol/thing",
        }
    )
    done = finished(flow, made["id"])
    assert done["status"] == "failed"
    assert done["error"].startswith("input.instance_data:") and "404" in done["error"]


def test_the_registry_down_at_build_time_fails_the_training_with_a_webhook(flow):
    receiver = Receiver()
    assert finished(flow, start(flow, "warm")["id"])["status"] == "succeeded"  # pulled, cached
    flow["registry"].stop()
    try:
        made = start(flow, "no-registry", webhook=receiver.url)
        done = finished(flow, made["id"])
    finally:
        flow["registry"].start()
    assert done["status"] == "failed"
    assert "build and push" in done["error"] and "not answering" in done["error"]
    assert flow["registry"].url in done["error"]
    wait_for(lambda: receiver.received, 20, "the webhook")
    assert receiver.bodies()[0]["status"] == "failed"
    receiver.close()


def test_cancel_stops_the_trainers_prediction(flow):
    receiver = Receiver()
    made = start(flow, "long", webhook=receiver.url, seconds=60, steps=60)
    client = flow["api"].client(flow["token"])
    wait_for(lambda: "step 2/60" in (client.training(made["id"])["logs"] or ""), 60, "running")
    client.cancel(made["id"])
    done = finished(flow, made["id"], timeout=30)
    assert done["status"] == "canceled" and done["version"] is None
    assert "step 20/60" not in done["logs"]
    wait_for(lambda: receiver.received, 20, "the webhook")
    assert receiver.bodies()[0]["status"] == "canceled"
    receiver.close()


def test_a_training_survives_a_restart_of_the_api(flow):
    made = start(flow, "api-restart", seconds=4, steps=4)
    flow["api"].kill()
    flow["api"] = API(flow["env"], flow["root"]).start()
    done = finished(flow, made["id"])
    assert done["status"] == "succeeded"


def test_the_version_is_the_template_plus_one_weights_layer(flow):
    made = start(flow, "layers", weights_mb=3)
    done = finished(flow, made["id"])
    with Registry(flow["registry"].url) as registry:
        built, digest = registry.manifest("models/carol/thing", done["version"])
        template, _ = registry.manifest("cog/vanilla", flow["template"])
        config = registry.config("models/carol/thing", built)
    assert digest == done["version"]
    assert built["layers"][:-1] == template["layers"]
    weights = built["layers"][-1]
    assert weights["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert 3 * 1024**2 < weights["size"] < 3 * 1024**2 + 64 * 1024  # stored, not recompressed
    assert config["history"][-1]["created_by"] == "COPY weights /src/weights"
    assert config["rootfs"]["diff_ids"][-1] == weights["digest"]
    versions = flow["api"].client(flow["token"]).versions("carol/thing")
    assert versions[0]["id"] == done["version"] and versions[0]["notes"] == "notes for layers"
    tags = httpx.get(f"{flow['registry'].url}/v2/models/carol/thing/tags/list").json()["tags"]
    assert made["id"] in tags and "latest" in tags
    assert json.loads(config["config"]["Labels"]["run.cog.openapi_schema"])["info"]


def test_the_cli_trains_from_a_payload_file_and_flags_and_follows_the_logs(flow, tmp_path):
    import subprocess
    import sys

    from tests.api.helpers import REPO

    (flow["root"] / "files" / "cli.txt").write_text("cli\n")
    payload = tmp_path / "payload.json"
    payload.write_text(
        json.dumps(
            {
                "input": {"steps": 3},
                "trainer_version": flow["trainer"],
                "template_version": flow["template"],
                "model": "carol/from-cli",
            }
        )
    )
    env = {
        **flow["env"],
        "DREAMBOOTH_API_URL": flow["api"].url,
        "DREAMBOOTH_API_TOKEN": flow["token"],
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "train",
            str(payload),
            "--notes",
            "from the CLI",
            "--instance-data",
            flow["files"].url("cli.txt"),
            "-i",
            "seconds=0.5",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    training_id = run.stdout.strip()
    assert "step 3/3" in run.stderr and "succeeded: sha256:" in run.stderr
    done = flow["api"].client(flow["token"]).training(training_id)
    assert done["notes"] == "from the CLI" and done["input"]["seconds"] == 0.5
    bad = subprocess.run(
        [sys.executable, "-m", "api", "train", str(payload), "-i", "step=3"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "did you mean 'steps'" in bad.stderr


def test_a_template_version_gone_from_the_registry_fails_with_a_clear_error(flow, vanilla_context):
    receiver = Receiver()
    url = flow["registry"].url
    response = httpx.delete(f"{url}/v2/cog/vanilla/manifests/{flow['template']}")
    assert response.status_code == 202
    try:
        made = start(flow, "no-template", webhook=receiver.url)
        done = finished(flow, made["id"])
    finally:  # the same context pushed again is the same version
        assert push(flow["env"], "vanilla", "--context", str(vanilla_context)) == flow["template"]
    assert done["status"] == "failed"
    assert "build and push" in done["error"] and "not found" in done["error"]
    assert flow["template"] in done["error"]
    wait_for(lambda: receiver.received, 20, "the webhook")
    assert receiver.bodies()[0]["status"] == "failed"
    receiver.close()
