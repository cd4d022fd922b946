"""What the work directory keeps, so a long-lived trainer server does not fill its disk.

    TRAINER_KEEP_RUNS        runs kept, newest first (default 3). A finished run keeps its
                             output.zip, an interrupted one its last checkpoint (so the same
                             inputs resume it); older runs are removed whole.
    TRAINER_MAX_WORK_GB      what runs and class images may hold in all (default 40, any
                             positive number); the oldest runs go first, then the oldest
                             class-image sets. The run starting is never removed.
    TRAINER_KEEP_CLASS_SETS  sets of generated class images kept (default 8), one set per
                             class prompt, base model and resolution.

The policy is applied when a run starts (and for class images, once they are ready). A run
in progress holds a lock on its directory, so it is never pruned, even by another process
sharing the work directory, and an identical run cannot start twice at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from core.errors import UserError

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"
GB = 2**30


@dataclass(frozen=True)
class Retention:
    keep_runs: int = 3
    max_bytes: int = 40 * GB
    keep_class_sets: int = 8

    def __post_init__(self) -> None:
        for spec in fields(self):
            if getattr(self, spec.name) < 1:
                raise ValueError(f"Retention.{spec.name} must be at least 1")

    @classmethod
    def from_env(cls) -> Retention:
        def number(name: str, default: float, least: float) -> float:
            text = os.environ.get(name, "")
            try:
                value = float(text) if text else default
            except ValueError:
                value = least - 1
            if value < least:
                raise UserError(f"{name}={text!r} must be a number of at least {least:g}")
            return value

        return cls(
            keep_runs=int(number("TRAINER_KEEP_RUNS", cls.keep_runs, 1)),
            max_bytes=max(1, int(number("TRAINER_MAX_WORK_GB", cls.max_bytes / GB, 1e-6) * GB)),
            keep_class_sets=int(number("TRAINER_KEEP_CLASS_SETS", cls.keep_class_sets, 1)),
        )


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _in_use(folder: Path) -> bool:
    """Whether a run holds `folder`'s lock right now."""
    lock = folder / LOCK_FILE
    if not lock.is_file():
        return False
    with lock.open("a") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(stream, fcntl.LOCK_UN)
    return False


def _newest_first(root: Path) -> list[Path]:
    folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)


def _remove(folder: Path, why: str) -> int:
    size = folder_bytes(folder)
    shutil.rmtree(folder, ignore_errors=True)
    log.info("work directory: removed %s (%.1f MB, %s)", folder.name, size / 2**20, why)
    return size


def prune(root: Path, keep: int, budget: int, protect: Path | None = None) -> int:
    """Keep the `keep` newest folders of `root` within `budget` bytes; returns bytes left."""
    folders = [f for f in _newest_first(root) if f != protect and not _in_use(f)]
    used = folder_bytes(root) if root.is_dir() else 0
    kept = 1 if protect is not None else 0
    for folder in folders:  # newest first
        kept += 1
        if kept > keep:
            used -= _remove(folder, f"more than {keep} kept")
    for folder in reversed([f for f in folders if f.exists()]):  # oldest first
        if used <= budget:
            break
        used -= _remove(folder, f"the work directory is over {budget / GB:.1f} GB")
    return used


def apply(work: Path, policy: Retention, current_run: Path | None = None) -> None:
    runs = prune(work / "runs", policy.keep_runs, policy.max_bytes, current_run)
    prune(work / "class-images", policy.keep_class_sets, max(0, policy.max_bytes - runs))


@contextmanager
def claim(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for one run: locked, marked as the newest, others pruned."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / LOCK_FILE).open("a") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                "an identical training run (same photos and inputs) is already in progress in "
                "this work directory; wait for it to finish"
            ) from None
        os.utime(run_dir)
        apply(run_dir.parent.parent, Retention.from_env(), current_run=run_dir)
        try:
            yield
        finally:
            fcntl.flock(stream, fcntl.LOCK_UN)
