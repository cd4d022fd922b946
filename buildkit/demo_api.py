"""`make demo`, part two: the same tiny training through the trainings API.

1. `script/push trainer` and `script/push vanilla` store both as versions in the local registry
   (each push starts the registry for itself when none is running);
2. `script/serve api` starts the API with its registry and a worker;
3. seed 000's payload goes to POST /v1/trainings, with a local webhook receiver;
4. the worker trains, builds the weights on the template and pushes a new version of the model;
5. the webhook arrives, its Standard Webhooks signature is checked, and the new version
   generates an image through POST /v1/models/{owner}/{name}/predictions.

Everything stays in demo-output/api/ and on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from buildkit.cog_client import free_port
from buildkit.targets import REPO_ROOT


class _Hook(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()


def _receiver() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _run(env: dict, *command: str) -> str:
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def _serve(env: dict, out: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    log = (out / "api.log").open("ab")
    command = [str(REPO_ROOT / "script/serve"), "api", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"the API did not start; see {out / 'api.log'}")


def _train_and_generate(client, receiver, photos, training, out, trainer, vanilla) -> Path:
    from standardwebhooks.webhooks import Webhook

    from api.client import data_uri

    made = client.train(
        {
            "input": {**training, "instance_data": data_uri(photos)},
            "trainer_version": trainer.removeprefix("sha256:"),
            "template_version": vanilla.removeprefix("sha256:"),
            "model": "demo/cat",
            "notes": "make demo, part two",
            "webhook_completed": f"http://127.0.0.1:{receiver.server_port}/hook?from=demo",
        }
    )
    print(f"    POST /v1/trainings -> {made['id']} ({made['status']})")
    done = client.wait(made["id"], timeout=1800)
    if done["status"] != "succeeded":
        raise SystemExit(f"the training {done['status']}: {done['error']}")
    for stage in done["stages"]:
        print(f"    {stage['name']:<9} {stage['seconds']:.1f}s")
    print(f"    new version of demo/cat: {done['version']}")
    for _ in range(100):
        if receiver.received:
            break
        time.sleep(0.1)
    headers, body = receiver.received[0]
    hook = Webhook(client.secret()).verify(body, headers)
    print(
        f"    webhook: signature verified, status {hook['status']}, "
        f"predict_time {hook['metrics']['predict_time']:.1f}s"
    )
    inputs = {"width": 64, "height": 64, "num_inference_steps": 20, "seed": 7}
    result = client.predict("demo/cat", inputs)
    image = out / "image-api.png"
    image.write_bytes(base64.b64decode(result["output"][0].split(",", 1)[1]))
    (out / "training.json").write_text(json.dumps(done, indent=2))
    return image


def main(base: Path, template: Path, photos: Path, training: dict, out: Path) -> Path:
    from api.client import Client

    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DREAMBOOTH_HOME": str(out / "home"),
        "DREAMBOOTH_REGISTRY_PORT": str(free_port()),
        "DREAMBOOTH_ALLOW_PRIVATE_URLS": "1",  # the webhook receiver is on 127.0.0.1
        "PYTHONPATH": str(REPO_ROOT),
    }
    py = sys.executable
    trainer = _run(env, str(REPO_ROOT / "script/push"), "trainer", "--base-weights", str(base))
    vanilla = _run(
        env, str(REPO_ROOT / "script/push"), "vanilla", "--template-weights", str(template)
    )
    print(f"    trainer version  {trainer}\n    template version {vanilla}")
    token = _run(env, py, "-m", "api", "token", "create", "demo")
    process, url = _serve(env, out)
    receiver = _receiver()
    try:
        return _train_and_generate(
            Client(url, token), receiver, photos, training, out, trainer, vanilla
        )
    finally:
        receiver.shutdown()
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
