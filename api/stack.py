"""`script/serve api`: the API on 127.0.0.1:$PORT, with what it needs unless configured elsewhere.

    script/serve api                      # + the local registry and one worker (SQLite queue)
    script/serve api --workers 2 --gpus 0,1   # two workers, one GPU each (set DREAMBOOTH_REDIS_URL)
    script/serve api --workers 0          # the API alone; workers run elsewhere

The registry is started only when DREAMBOOTH_REGISTRY_URL is unset and nothing answers on
DREAMBOOTH_REGISTRY_PORT. Workers are named `<host>-<n>`; one that dies is started again under
its name, and re-attaches to the training it was carrying (so does a restarted stack).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading

from api import db, registry_server
from api.jobs import jobs
from api.processes import die_with_parent
from api.settings import load


class Workers:
    """The stack's workers, each restarted (same name, same GPU) if it dies."""

    def __init__(self, count: int, gpus: list[str]):
        self.logs = load().home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands = []
        for index in range(count):
            command = [sys.executable, "-m", "api.cli", "worker", "--name", f"{_host()}-{index}"]
            if index < len(gpus):
                command += ["--gpu", gpus[index]]
            self.commands.append(command)
        self.processes = [self._start(i) for i in range(count)]
        self.stopping = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _start(self, index: int) -> subprocess.Popen:
        out = (self.logs / f"worker-{index}.log").open("ab")
        return subprocess.Popen(
            self.commands[index],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for index, process in enumerate(self.processes):
                if process.poll() is not None and not self.stopping.is_set():
                    print(f"worker {index} exited ({process.returncode}); restarting", flush=True)
                    self.processes[index] = self._start(index)

    def __len__(self) -> int:
        return len(self.processes)

    def stop(self) -> None:
        self.stopping.set()
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _host() -> str:
    return socket.gethostname().split(".")[0].lower()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from api.app import create_app

    parser = argparse.ArgumentParser(prog="script/serve api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("DREAMBOOTH_WORKERS", 1)))
    parser.add_argument(
        "--gpus",
        default=os.environ.get("DREAMBOOTH_GPUS", ""),
        help="comma-separated GPU ids, one per worker",
    )
    args = parser.parse_args(argv)
    settings = load()
    db.migrate(settings.database_url)
    registry = registry_server.ensure(settings)
    redis = None
    if args.workers > 1 and not settings.redis_url:  # several workers share one Redis queue
        from api.redis_server import LocalRedis

        redis = LocalRedis(settings.home / "redis", settings.registry_port + 1).start()
        os.environ["DREAMBOOTH_REDIS_URL"] = redis.url
        jobs.cache_clear()
    workers = Workers(args.workers, [g for g in args.gpus.split(",") if g])
    settings = load()
    print(
        f"DreamBooth API on http://{args.host}:{args.port} (registry {settings.registry}, "
        f"{len(workers)} worker(s), home {settings.home})",
        flush=True,
    )
    try:
        app = create_app(settings)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        workers.stop()
        if registry:
            registry.stop()
        if redis:
            redis.stop()
