"""Child processes that do not outlive the process that started them (Linux's PDEATHSIG).

The stack's registry, Redis and workers get SIGTERM when the stack dies, however it dies.
(Trainings are the exception on purpose: a supervisor outlives its worker; see api/worker.py.)
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn`: SIGTERM this child when the thread that started it ends."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalService:
    """A server binary run by the stack itself (redis-server, docker-registry) on 127.0.0.1.

    Subclasses give `name`, `command()` (with any files it needs written first), and
    `answers()`; `start()` waits until it answers, `stop()` ends its process group.
    """

    name = "service"
    env: dict | None = None

    def __init__(self, home: Path, port: int):
        self.home, self.port = Path(home), port
        self.process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 20.0):
        self.home.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(f"{self.name} did not start on port {self.port}:\n{tail}")
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
