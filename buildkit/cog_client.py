"""A client for Cog's real HTTP server, sending requests exactly as `cog predict`/`cog train` do.

Files go in as data URIs (what `cog predict -i x=@file` sends); file outputs come back as data
URIs and are decoded here.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the repository root


def data_uri(path: Path | str, mime: str | None = None) -> str:
    path = Path(path)
    mime = mime or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), header[:60]
    return base64.b64decode(payload)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CogServer:
    """`script/serve TARGET` in a subprocess; use as a context manager."""

    def __init__(
        self,
        target: str,
        env: dict[str, str] | None = None,
        mode: str = "predict",
        context: Path | None = None,
        setup_timeout: float = 180,
    ):
        self.target, self.mode, self.context = target, mode, context
        self.port = free_port()
        self.env = {**os.environ, "PORT": str(self.port), **(env or {})}
        self.setup_timeout = setup_timeout
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CogServer:
        command = [str(REPO / "script" / "serve"), self.target, "--mode", self.mode]
        if self.context:
            command += ["--context", str(self.context)]
        log_dir = Path(self.env.get("COG_TEST_LOG_DIR", "/tmp"))
        self.log_path = log_dir / f"cog-{self.target}-{self.port}.log"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self.wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/health-check", timeout=5) as response:
            return json.loads(response.read())

    def settles_ready(self, seconds: float = 15) -> bool:
        """True once the server reports READY again (it is BUSY briefly after a prediction)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.health()["status"] == "READY":
                return True
            time.sleep(0.1)
        return False

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + self.setup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.logs()}")
            try:
                health = self.health()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
                continue
            if health["status"] in ("READY", "SETUP_FAILED", "DEFUNCT"):
                if health["status"] != "READY":
                    raise RuntimeError(f"setup failed: {json.dumps(health)[:4000]}")
                return health
            time.sleep(0.3)
        raise TimeoutError(f"server not ready in {self.setup_timeout}s:\n{self.logs()[-4000:]}")

    def post(self, endpoint: str, payload: dict, timeout: float = 900) -> tuple[int, dict]:
        """POST JSON; retries briefly on 409, which coglet answers while it frees the last slot."""
        for _ in range(50):
            status, body = self._post_once(endpoint, payload, timeout)
            if status != 409:
                return status, body
            time.sleep(0.2)
        return status, body

    def _post_once(self, endpoint: str, payload: dict, timeout: float) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}{endpoint}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def stream(self, timeout: float = 900, **inputs) -> list[tuple[str, dict]]:
        """POST /predictions asking for server-sent events; returns (event, data) in order."""
        request = urllib.request.Request(
            f"{self.url}/predictions",
            data=json.dumps({"input": inputs}).encode(),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        events, name = [], None
        with urllib.request.urlopen(request, timeout=timeout) as response:
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, json.loads(line.removeprefix("data: "))))
        return events

    def predict(self, timeout: float = 900, **inputs) -> tuple[int, dict]:
        return self.post("/predictions", {"input": inputs}, timeout)

    def train(self, timeout: float = 900, **inputs) -> tuple[int, dict]:
        return self.post("/trainings", {"input": inputs}, timeout)


class PredictionFailedError(RuntimeError):
    pass


def succeeded(status: int, body: dict) -> dict:
    """The response body of a successful prediction; otherwise its error and logs, raised."""
    if status != 200 or body.get("status") != "succeeded":
        summary = f"HTTP {status}: {body.get('status')} {body.get('error')}"
        raise PredictionFailedError(f"{summary}\n{body.get('logs', '')[-3000:]}")
    return body
