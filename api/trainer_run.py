"""One trainer prediction on a pulled trainer version, through its real Cog server.

The server is `script/serve trainer --context <version>` with `--upload-url` pointing at a small
loopback receiver of ours. The prediction runs async (`Prefer: respond-async`): coglet sends its
live logs and metrics as webhooks to that receiver, PUTs output.zip to it (streamed to disk, not
base64 in JSON), and downloads the inputs from it, so the trainer gets only the bytes the API
fetched or received and never a path of its own disk.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import httpx

from buildkit import serve, targets
from buildkit.cog_client import CogServer

TERMINAL = {"succeeded", "failed", "canceled"}


@dataclass
class Outcome:
    status: str = "starting"
    logs: str = ""
    error: str | None = None
    metrics: dict = field(default_factory=dict)
    output: Path | None = None
    setup_time: float = 0.0  # the trainer's server: start to READY (imports, setup())


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, code: int, headers: dict | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # coglet downloading an input
        path = self.server.files.get(unquote(self.path.removeprefix(f"/{self.server.key}/in/")))
        if path is None:
            return self._reply(404)
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        with path.open("rb") as source:
            shutil.copyfileobj(source, self.wfile, 1024 * 1024)

    def do_PUT(self) -> None:  # coglet uploading an output file
        prefix = f"/{self.server.key}/upload/"
        if not self.path.startswith(prefix):
            return self._reply(404)
        name = Path(unquote(self.path.removeprefix(prefix))).name or "output"
        destination = self.server.outputs / name
        remaining = int(self.headers.get("Content-Length", 0))
        with destination.open("wb") as out:
            while remaining:
                chunk = self.rfile.read(min(remaining, 1024 * 1024))
                if not chunk:
                    break
                out.write(chunk)
                remaining -= len(chunk)
        location = f"http://127.0.0.1:{self.server.server_port}/{self.server.key}/out/{name}"
        self._reply(201, {"Location": location})

    def do_POST(self) -> None:  # coglet's webhooks
        if self.path != f"/{self.server.key}/webhook":
            return self._reply(404)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(200)
        self.server.on_event(json.loads(body))


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, Path], outputs: Path, on_event: Callable[[dict], None]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.outputs, self.on_event = files, outputs, on_event
        self.key = secrets.token_urlsafe(16)  # other local processes cannot guess the paths
        outputs.mkdir(parents=True, exist_ok=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/{self.key}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Server(CogServer):
    """`script/serve trainer --context DIR --upload-url URL`, run through script/serve's own
    functions in this process (one interpreter start less per training); it reports its
    process id as soon as it exists, before the trainer's setup ends."""

    def __init__(self, *args, upload_url: str, on_start: Callable[[int], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.upload_url, self.on_start = upload_url, on_start
        self.extra = dict(kwargs.get("env") or {})

    def __enter__(self) -> _Server:
        root = Path(self.context).resolve()
        target = serve.prepare(self.target, root, self.mode, context=True)
        env = {**serve.server_env(target, root, self.port, baked=True), **self.extra}
        command = serve.server_command("127.0.0.1", self.mode, self.upload_url)
        self.log_path = Path(env.get("COG_TEST_LOG_DIR", root)) / f"cog-trainer-{self.port}.log"
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=root,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.on_start(self.process.pid)
        started = time.monotonic()
        try:
            self.wait_ready()
            self.setup_time = round(time.monotonic() - started, 3)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        """The prediction is over (its output already uploaded): nothing to wait for."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Run:
    """A trainer prediction: start it, follow it, cancel it."""

    def __init__(self, on_update: Callable[[Outcome], None]):
        self.outcome, self.on_update = Outcome(), on_update
        self.done = threading.Event()
        self.lock = threading.Lock()

    def event(self, payload: dict) -> None:
        with self.lock:
            if self.outcome.status in TERMINAL:
                return
            self.outcome.status = payload.get("status", self.outcome.status)
            self.outcome.logs = payload.get("logs") or self.outcome.logs
            self.outcome.metrics = payload.get("metrics") or self.outcome.metrics
            self.outcome.error = payload.get("error")
            output = payload.get("output")
            if isinstance(output, str) and "/out/" in output:
                self.outcome.output = Path(output.rsplit("/out/", 1)[1])
            self.on_update(self.outcome)
            if self.outcome.status in TERMINAL:
                self.done.set()


def run(
    context: Path,
    inputs: dict,
    files: dict[str, Path],
    workdir: Path,
    env: dict[str, str],
    on_update: Callable[[Outcome], None],
    cancelled: Callable[[], bool],
    setup_timeout: float = 900,
    on_server: Callable[[int], None] = lambda pid: None,
) -> Outcome:
    """Run the trainer at `context` on `inputs` (+ `files`); returns once it is terminal."""
    follower = Run(on_update)
    outputs = workdir / "outputs"
    with Receiver(files, outputs, follower.event) as receiver:
        request = {
            "id": "tr-" + secrets.token_hex(8),
            "input": {**inputs, **{name: f"{receiver.url}/in/{name}" for name in files}},
            "webhook": f"{receiver.url}/webhook",
            "webhook_events_filter": ["start", "output", "logs", "completed"],
        }
        server_env = {**env, "COG_TEST_LOG_DIR": str(workdir)}
        with _Server(
            targets.from_cog_yaml(Path(context) / "cog.yaml").name,  # trainer, trainer-sdxl
            env=server_env,
            context=context,
            setup_timeout=setup_timeout,
            upload_url=f"{receiver.url}/upload/",
            on_start=on_server,
        ) as server:
            follower.outcome.setup_time = server.setup_time
            _start(server.url, request)
            _follow(server, request["id"], follower, cancelled)
    outcome = follower.outcome
    if outcome.output is not None:
        outcome.output = outputs / outcome.output.name
    return outcome


def _start(url: str, request: dict) -> None:
    for _ in range(100):
        response = httpx.post(
            f"{url}/predictions", json=request, headers={"Prefer": "respond-async"}, timeout=60
        )
        if response.status_code != 409:
            break
        time.sleep(0.2)
    if response.status_code == 422:
        raise ValueError(f"the trainer refused its input: {response.text[:1000]}")
    if response.status_code != 202:
        raise RuntimeError(f"the trainer's server answered {response.status_code}: {response.text}")


IDLE_GRACE = 30.0  # seconds a server may be idle before its last webhook counts as lost


def _follow(server: CogServer, prediction_id: str, follower: Run, cancelled) -> None:
    """Until the terminal webhook. coglet cannot be polled (GET /predictions/{id} is 405), so a
    server that is READY again for IDLE_GRACE without having said how it ended fails the
    training instead of leaving it processing forever."""
    asked, idle_since = False, None
    while not follower.done.wait(0.5):
        if server.process.poll() is not None:
            follower.event({"status": "failed", "error": "the trainer's Cog server exited"})
        elif cancelled() and not asked:
            httpx.post(f"{server.url}/predictions/{prediction_id}/cancel", timeout=30)
            asked = True
        elif _idle(server):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > IDLE_GRACE:
                error = "the trainer's server is idle but never reported how the training ended"
                follower.event({"status": "failed", "error": error})
        else:
            idle_since = None


def _idle(server: CogServer) -> bool:
    try:
        return server.health()["status"] == "READY"
    except (OSError, ValueError, KeyError):
        return False
