"""Real processes for the API's tests: the API, workers, a webhook receiver, a file server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from api.client import Client
from api.processes import die_with_parent
from buildkit.cog_client import free_port

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout}s")


class Process:
    """A child in its own session, its output in a log file."""

    def __init__(self, command: list[str], env: dict, log: Path):
        self.command, self.env, self.log = command, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> Process:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
            preexec_fn=die_with_parent,  # nothing outlives an interrupted test run
        )
        return self

    def kill(self, sig=signal.SIGKILL, group: bool = True) -> None:
        if self.process and self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, sig)
            else:
                os.kill(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class API(Process):
    """`script/serve api` (with --workers N, 0 by default) on a free port."""

    def __init__(self, env: dict, log_dir: Path, workers: int = 0):
        self.port = free_port()
        super().__init__(
            [
                str(REPO / "script" / "serve"),
                "api",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env,
            log_dir / f"api-{self.port}.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> API:
        super().start()

        def up():
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the API answering")
        return self

    def client(self, token: str | None) -> Client:
        return Client(self.url, token)


def worker(env: dict, log_dir: Path, name: str, gpu: str | None = None) -> Process:
    command = [sys.executable, "-m", "api.cli", "worker", "--name", name]
    if gpu is not None:
        command += ["--gpu", gpu]
    return Process(command, env, log_dir / f"worker-{name}.log").start()


def token(env: dict, owner: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "token", "create", owner],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return done.stdout.strip()


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.received.append(
                {"path": self.path, "headers": dict(self.headers), "body": body}
            )
        code = self.server.answer
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that records every request."""

    daemon_threads = True

    def __init__(self, port: int | None = None):
        super().__init__(("127.0.0.1", port or 0), _Hook)
        self.received: list[dict] = []
        self.lock = threading.Lock()
        self.answer = 200
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/hook"

    def bodies(self) -> list[dict]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.received]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Files(ThreadingHTTPServer):
    """Serves files from a folder on 127.0.0.1 (an https host of the user, in the tests)."""

    daemon_threads = True

    def __init__(self, folder: Path):
        from functools import partial
        from http.server import SimpleHTTPRequestHandler

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_port}/{name}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
