"""A local Redis (Debian's `redis-server`) for several workers on one machine.

`script/serve api --workers 2` starts one when DREAMBOOTH_REDIS_URL is unset; its files live
under `$DREAMBOOTH_HOME/redis`, it listens on 127.0.0.1 only and saves nothing to disk (huey's
queue is rebuilt from the database by recovery if Redis is lost).
"""

from __future__ import annotations

import shutil
import socket

from api.processes import LocalService

INSTALL_HINT = "install it with `apt-get install redis-server` (make test does)"


class LocalRedis(LocalService):
    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
        if binary is None:
            raise SystemExit(f"`redis-server` is not installed; {INSTALL_HINT}")
        return [
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
