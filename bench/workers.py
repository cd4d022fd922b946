"""Each side of a benchmark runs in its own child process, so its peak memory is its own."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.gpu_memory import DevicePeak

PREFIX = "RESULT "


def report(result: dict) -> None:
    """Called in the child: hand the measurements back to the parent."""
    print(PREFIX + json.dumps(result), flush=True)


def run(module: str, side: str, flags: list[str]) -> dict:
    """Run `python -m module --worker side *flags` and return what it reported."""
    return run_command([sys.executable, "-m", module, "--worker", side, *flags])


def run_command(command: list[str], cwd=None, env=None) -> dict:
    """Run a child that calls `report`; adds the device-level GPU peak seen meanwhile."""
    with DevicePeak() as device:
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])} … failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    line = next(row for row in done.stdout.splitlines() if row.startswith(PREFIX))
    result = json.loads(line.removeprefix(PREFIX))
    if device.peak_mb is not None:
        result["peak_device_mb"] = device.peak_mb
    return result
