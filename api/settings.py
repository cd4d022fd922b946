"""Every knob of the service, read once from the environment.

Everything the service writes lives under `DREAMBOOTH_HOME` (default `work/api`): the SQLite
database, the job queue, the local registry's storage, pulled versions and each training's files.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    registry_url: str | None  # None: the service runs its own registry on registry_port
    registry_port: int
    redis_url: str | None  # None: huey on SQLite under home (one machine)
    allow_private_urls: bool
    max_fetch_bytes: int
    fetch_timeout: float
    webhook_attempts: int
    webhook_backoff: float
    webhook_timeout: float
    lease_seconds: float
    worker_name: str = field(default_factory=socket.gethostname)
    gpu: str | None = None

    @property
    def registry(self) -> str:
        return self.registry_url or f"http://127.0.0.1:{self.registry_port}"

    @property
    def queue_path(self) -> Path:
        return self.home / "queue.db"

    def training_dir(self, training_id: str) -> Path:
        return self.home / "trainings" / training_id

    @property
    def versions_dir(self) -> Path:
        return self.home / "versions"

    @property
    def trainer_work_dir(self) -> Path:
        """Shared by every training on this machine: identical runs resume, class images cache."""
        return self.home / "trainer-work"


def load() -> Settings:
    home = Path(os.environ.get("DREAMBOOTH_HOME", "work/api")).resolve()
    return Settings(
        home=home,
        database_url=os.environ.get("DREAMBOOTH_DATABASE_URL") or f"sqlite:///{home / 'db.sqlite'}",
        registry_url=os.environ.get("DREAMBOOTH_REGISTRY_URL") or None,
        registry_port=_int("DREAMBOOTH_REGISTRY_PORT", 5100),
        redis_url=os.environ.get("DREAMBOOTH_REDIS_URL") or None,
        allow_private_urls=_flag("DREAMBOOTH_ALLOW_PRIVATE_URLS"),
        max_fetch_bytes=_int("DREAMBOOTH_MAX_FETCH_BYTES", 8 * 1024**3),
        fetch_timeout=_float("DREAMBOOTH_FETCH_TIMEOUT", 600.0),
        webhook_attempts=_int("DREAMBOOTH_WEBHOOK_ATTEMPTS", 8),
        webhook_backoff=_float("DREAMBOOTH_WEBHOOK_BACKOFF", 5.0),
        webhook_timeout=_float("DREAMBOOTH_WEBHOOK_TIMEOUT", 10.0),
        lease_seconds=_float("DREAMBOOTH_LEASE_SECONDS", 30.0),
        worker_name=os.environ.get("DREAMBOOTH_WORKER_NAME") or socket.gethostname(),
        gpu=os.environ.get("DREAMBOOTH_GPU") or None,
    )
