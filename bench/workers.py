"""Each side of a benchmark runs in its own child process, so its peak memory is its own."""

from __future__ import annotations

import json
import subprocess
import sys

PREFIX = "RESULT "


def report(result: dict) -> None:
    """Called in the child: hand the measurements back to the parent."""
    print(PREFIX + json.dumps(result), flush=True)


def run(module: str, side: str, flags: list[str]) -> dict:
    """Run `python -m module --worker side *flags` and return what it reported."""
    command = [sys.executable, "-m", module, "--worker", side, *flags]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next(row for row in output.splitlines() if row.startswith(PREFIX))
    return json.loads(line.removeprefix(PREFIX))
