"""The CNCF distribution registry (Debian's `docker-registry`), run by the service itself.

Its storage lives under `$DREAMBOOTH_HOME/registry`; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from api.processes import LocalService
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


class LocalRegistry(LocalService):
    """`docker-registry serve` on 127.0.0.1:port; use as a context manager or start()/stop()."""

    name = "registry"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/bin:/usr/sbin")
        if binary is None:
            raise SystemExit(f"the registry binary `{BINARY}` is not installed; {INSTALL_HINT}")
        config = self.home / "config.yml"
        config.write_text(config_text(self.home / "storage", self.port))
        self.env = {**os.environ, "REGISTRY_HTTP_SECRET": _secret(self.home)}
        return [binary, "serve", str(config)]

    def answers(self) -> bool:
        with Registry(self.url) as client:
            return client.ping()


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
