"""The CNCF distribution registry (Debian's `docker-registry`), run by the service itself.

Its storage lives under `$DREAMBOOTH_HOME/registry`; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from api.processes import die_with_parent
from api.registry import Registry
from api.settings import Settings

BINARY = "docker-registry"
INSTALL_HINT = "install it with `apt-get install docker-registry` (make test does)"


def config_text(storage: Path, port: int) -> str:
    return "\n".join(
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{port}",
            "",
        ]
    )


class LocalRegistry:
    """`docker-registry serve` on 127.0.0.1:port; use as a context manager or start()/stop()."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = Path(home), port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> LocalRegistry:
        binary = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/bin:/usr/sbin")
        if binary is None:
            raise SystemExit(f"the registry binary `{BINARY}` is not installed; {INSTALL_HINT}")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "config.yml"
        config.write_text(config_text(self.home / "storage", self.port))
        env = {**os.environ, "REGISTRY_HTTP_SECRET": _secret(self.home)}
        log = (self.home / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        with Registry(self.url) as client:
            while not client.ping():
                if self.process.poll() is not None:
                    tail = (self.home / "registry.log").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"the registry exited ({self.process.returncode}):\n{tail}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the registry did not answer on {self.url} in {timeout}s")
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

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _secret(home: Path) -> str:
    """A stable upload secret, so a restarted registry accepts uploads begun before."""
    path = home / "http-secret"
    if not path.exists():
        path.write_text(os.urandom(24).hex())
    return path.read_text().strip()


def ensure(settings: Settings) -> LocalRegistry | None:
    """The configured registry, or ours when nothing answers: started (and returned) then."""
    if settings.registry_url:
        return None
    with Registry(settings.registry) as client:
        if client.ping():
            return None
    return LocalRegistry(settings.home / "registry", settings.registry_port).start()
