"""Where a template writes the images it returns: one owned, bounded folder per process.

    $TEMPLATE_OUTPUTS_DIR  (default <temp dir>/dreambooth-template-outputs) holds one folder per
                           serving process, `<template>-<pid>`.

Cog reads each image file as it is yielded, so a folder only ever holds the current request's
images: it is emptied when the next request starts and removed when the process exits, also on
SIGTERM (how a server is stopped; the handler then passes the signal on). Folders left by
processes that no longer run (killed outright) are removed at setup.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import tempfile
import weakref
from pathlib import Path

log = logging.getLogger(__name__)
FOLDER = re.compile(r"^.+-(\d+)$")


def outputs_root() -> Path:
    default = Path(tempfile.gettempdir()) / "dreambooth-template-outputs"
    return Path(os.environ.get("TEMPLATE_OUTPUTS_DIR") or default)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(root: Path) -> list[str]:
    """Remove the folders of processes that no longer run; return their names."""
    removed = []
    for folder in sorted(root.iterdir()):
        match = FOLDER.match(folder.name)
        if folder.is_dir() and match and not _running(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


class OutputFolder:
    def __init__(self, name: str, root: Path | None = None):
        self.root = Path(root or outputs_root())
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        removed = remove_stale(self.root)
        if removed:
            log.info("removed %d output folders of stopped servers", len(removed))
        self.path = self.root / f"{name}-{os.getpid()}"
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)  # also at exit
        _on_sigterm(self._cleanup)

    def fresh(self) -> Path:
        """An empty folder for this request's images (the previous request's are removed)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(mode=0o700)
        return self.path

    def remove(self) -> None:
        self._cleanup()


def _on_sigterm(cleanup) -> None:
    """Run `cleanup` on SIGTERM, then whatever was to happen on it (by default, exiting)."""
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        cleanup()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: the exit handler and setup's pruning remain
        log.info("output folder: no SIGTERM handler outside the main thread")
