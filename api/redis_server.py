"""A local Redis (Debian's `redis-server`) for several workers on one machine.

`script/serve api --workers 2` starts one when DREAMBOOTH_REDIS_URL is unset; its files live
under `$DREAMBOOTH_HOME/redis`, it listens on 127.0.0.1 only and saves nothing to disk (huey's
queue is rebuilt from the database by recovery if Redis is lost).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from api.processes import die_with_parent

INSTALL_HINT = "install it with `apt-get install redis-server` (make test does)"


class LocalRedis:
    def __init__(self, home: Path, port: int):
        self.home, self.port = Path(home), port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 20.0) -> LocalRedis:
        binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
        if binary is None:
            raise SystemExit(f"`redis-server` is not installed; {INSTALL_HINT}")
        self.home.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.home),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]
        log = (self.home / "redis.log").open("ab")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.home / "redis.log").read_text(errors="replace")[-1500:]
                raise SystemExit(f"redis-server did not start on port {self.port}:\n{tail}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
