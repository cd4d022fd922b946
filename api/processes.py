"""Child processes that do not outlive the process that started them (Linux's PDEATHSIG).

The stack's registry, Redis and workers get SIGTERM when the stack dies, however it dies.
(Trainings are the exception on purpose: a supervisor outlives its worker; see api/worker.py.)
"""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn`: SIGTERM this child when the thread that started it ends."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
