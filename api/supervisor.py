"""The process that carries one training through: fetch → train → build → push → webhook.

A worker starts it in its own session, so it outlives the worker: a worker that is killed and
comes back re-attaches to it (api/worker.py), and no training step runs twice. If this process
dies too, the worker starts it again; every stage is skipped when its result is already there,
and the trainer resumes from its last checkpoint.

    python -m api.supervisor TRAINING_ID
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from api import build, db, inputs, safe_fetch, trainer_run, versions, views, webhooks
from api.jobs import jobs
from api.models import Training, Version, now
from api.pull import pull
from api.registry import Registry, RegistryError
from api.settings import Settings, load

log = logging.getLogger("dreambooth.supervisor")
CHECKPOINT_LINE = "checkpoint saved at step"  # trainer/checkpoints.py logs it


class FailureError(Exception):
    """A step failed for a reason the user can act on; the message is shown as `error`."""


class Supervisor:
    def __init__(self, settings: Settings, training_id: str):
        self.settings, self.id = settings, training_id
        self.dir = settings.training_dir(training_id)
        self.cancel = threading.Event()
        self.stop = threading.Event()
        self.last_write = 0.0
        self.trainer_started = time.monotonic()

    # -- the database ---------------------------------------------------------------------
    def training(self) -> Training:
        with db.session(self.settings.database_url) as session:
            return session.get(Training, self.id)

    def update(self, **fields) -> None:
        with db.session(self.settings.database_url) as session:
            row = session.get(Training, self.id)
            for key, value in fields.items():
                setattr(row, key, value)

    def heartbeat(self) -> None:
        interval = max(0.5, self.settings.lease_seconds / 6)
        while not self.stop.wait(interval):
            with contextlib.suppress(Exception), db.session(self.settings.database_url) as session:
                row = session.get(Training, self.id)
                row.heartbeat_at = now()
                if row.cancel_requested:
                    self.cancel.set()

    @contextlib.contextmanager
    def stage(self, name: str):
        started = now()
        self.update(stage=name)
        yield
        with db.session(self.settings.database_url) as session:
            row = session.get(Training, self.id)
            stages = list((row.events or {}).get("stages", []))
            seconds = round((now() - started).total_seconds(), 3)
            stages.append({"name": name, "started_at": views.iso(started), "seconds": seconds})
            row.events = {**(row.events or {}), "stages": stages}

    def cancelled(self) -> bool:
        if not self.cancel.is_set() and self.training().cancel_requested:
            self.cancel.set()
        return self.cancel.is_set()

    # -- the stages -----------------------------------------------------------------------
    def fetch(self, t: Training, trainer: Version) -> dict[str, Path]:
        files = {}
        for name in sorted(inputs.file_fields(trainer.openapi_schema)):
            value = t.input.get(name)
            destination = self.dir / "inputs" / name
            if value is None:
                continue
            if not destination.exists():
                try:
                    size = safe_fetch.fetch(
                        value,
                        destination,
                        f"input.{name}",
                        self.settings.allow_private_urls,
                        self.settings.max_fetch_bytes,
                        self.settings.fetch_timeout,
                    )
                except safe_fetch.URLRefusedError as error:
                    raise FailureError(str(error)) from None
                log.info("fetched input.%s: %d bytes", name, size)
            files[name] = destination
        return files

    def on_trainer_update(self, outcome: trainer_run.Outcome) -> None:
        terminal = outcome.status in trainer_run.TERMINAL
        if not terminal and time.monotonic() - self.last_write < 0.5:
            return
        self.last_write = time.monotonic()
        with contextlib.suppress(Exception), db.session(self.settings.database_url) as session:
            row = session.get(Training, self.id)
            row.logs = outcome.logs
            keep = {k: v for k, v in (row.metrics or {}).items() if k.startswith("_")}
            checkpoints = outcome.logs.count(CHECKPOINT_LINE)
            if checkpoints > keep.get("_checkpoints", 0):  # work up to here is never redone
                keep["_checkpoints"] = checkpoints
                keep["_checkpoint_elapsed"] = round(time.monotonic() - self.trainer_started, 3)
            row.metrics = {
                **keep,
                **{k: v for k, v in outcome.metrics.items() if k != "predict_time"},
            }

    def train(self, t: Training, trainer: Version, files: dict[str, Path]) -> Path:
        weights = self.dir / "output.zip"
        if weights.exists() and (t.metrics or {}).get("_trained"):
            return weights
        with Registry(self.settings.registry) as registry:
            try:
                context = pull(
                    registry, trainer.repository, trainer.digest, self.settings.versions_dir
                )
            except RegistryError as error:
                raise FailureError(f"pulling trainer_version {trainer.digest}: {error}") from None
        # a crashed earlier attempt: its time up to its last checkpoint is billed, the rest is
        # redone by the resumed run and billed once, there
        metrics = dict(t.metrics or {})
        metrics["_billed_before"] = metrics.get("_billed_before", 0.0) + metrics.pop(
            "_checkpoint_elapsed", 0.0
        )
        metrics["_checkpoints"] = 0
        self.update(metrics=metrics)
        t.metrics = metrics
        self.trainer_started = time.monotonic()
        plain = {k: v for k, v in t.input.items() if k not in files}
        outcome = trainer_run.run(
            context,
            plain,
            files,
            self.dir,
            self.trainer_env(t),
            self.on_trainer_update,
            self.cancel.is_set,
            on_server=lambda pid: self.update(trainer_pid=pid),
        )
        if outcome.status == "canceled":
            return None
        if outcome.status != "succeeded" or outcome.output is None:
            raise FailureError(f"the trainer failed: {outcome.error or outcome.status}")
        outcome.output.replace(weights)
        billed_before = (t.metrics or {}).get("_billed_before", 0.0)
        predict_time = round(outcome.metrics.get("predict_time", 0.0) + billed_before, 6)
        metrics = {k: v for k, v in outcome.metrics.items() if k != "predict_time"}
        metrics["setup_time"] = outcome.setup_time
        self.update(
            predict_time=predict_time, metrics={**metrics, "_trained": True}, logs=outcome.logs
        )
        return weights

    def trainer_env(self, t: Training) -> dict[str, str]:
        env = {
            "TRAINER_WORK_DIR": str(self.settings.trainer_work_dir / (t.slot or "default")),
            "TMPDIR": str(self.dir / "tmp"),
        }
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        if t.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = t.gpu
        return env

    def trainer_version(self, t: Training) -> tuple[str, str]:
        with db.session(self.settings.database_url) as session:
            trainer = session.scalar(versions.select_version(t.trainer_version, "trainer"))
            return trainer.repository, trainer.digest

    def build(self, t: Training, template: Version, weights: Path) -> str:
        labels = {
            "dreambooth.training": t.id,
            "org.opencontainers.image.description": t.notes or "",
        }
        with Registry(self.settings.registry) as registry:
            try:
                if os.environ.get("DREAMBOOTH_BUILDER") == "docker":
                    built = build.docker_build_version(
                        registry,
                        template.repository,
                        template.digest,
                        weights,
                        t.model,
                        t.id,
                        self.dir,
                        template.openapi_schema,
                        trainer=self.trainer_version(t),
                    )
                else:
                    built = build.build_version(
                        registry,
                        template.repository,
                        template.digest,
                        weights,
                        t.model,
                        t.id,
                        labels,
                        trainer=self.trainer_version(t),
                    )
            except RegistryError as error:
                raise FailureError(f"build and push: {error}") from None
            except (ValueError, RuntimeError, OSError, subprocess.CalledProcessError) as error:
                raise FailureError(f"build: {error}") from None
        owner, _, _ = t.model.partition("/")
        with db.session(self.settings.database_url) as session:
            session.add(
                Version(
                    digest=built.digest,
                    repository=built.repository,
                    kind="model",
                    target=template.target,
                    owner=owner,
                    model=t.model,
                    notes=t.notes,
                    openapi_schema=built.schema,
                    training_id=t.id,
                    size_bytes=built.weights_bytes,
                )
            )
            session.get(Training, self.id).version = built.digest
        return built.digest

    def finish(self, status: str, error: str | None = None) -> None:
        with db.session(self.settings.database_url) as session:
            row = session.get(Training, self.id)
            if row.status in views.TERMINAL:
                return
            row.status, row.error, row.completed_at, row.stage = status, error, now(), "done"
            delivery = webhooks.create(session, row, views.training(row))
        if delivery is not None:  # the first attempt right away; retries go through the queue
            wait = webhooks.attempt(self.settings, delivery.id)
            if wait is not None:
                jobs().deliver.schedule((delivery.id,), delay=wait)

    # -- the whole flow -------------------------------------------------------------------
    def run(self) -> None:
        self.update(heartbeat_at=now(), supervisor_pid=os.getpid(), supervisor_host=_host())
        beat = threading.Thread(target=self.heartbeat, daemon=True)
        beat.start()
        try:
            self.steps()
        except FailureError as error:
            self.finish("failed", str(error))
        except Exception as error:
            (self.dir / "supervisor-error.txt").write_text(traceback.format_exc())
            self.finish("failed", f"internal error: {type(error).__name__}: {error}")
        finally:
            self.stop.set()

    def steps(self) -> None:
        t = self.training()
        if t.status in views.TERMINAL:
            return
        with db.session(self.settings.database_url) as session:
            trainer = session.scalar(versions.select_version(t.trainer_version, "trainer"))
            template = session.scalar(versions.select_version(t.template_version, "template"))
        with self.stage("fetching"):
            files = self.fetch(t, trainer)
        if self.cancelled():  # asked while queued or fetching: the trainer never starts
            return self.finish("canceled")
        with self.stage("training"):
            weights = self.train(t, trainer, files)
        if weights is None or self.cancel.is_set():
            return self.finish("canceled")
        if not self.training().version:
            with self.stage("building"):
                self.build(self.training(), template, weights)
        self.finish("succeeded")


def _host() -> str:
    import socket

    return socket.gethostname()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds: the trainer's server is stopped on the way out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    Supervisor(load(), argv[0]).run()


if __name__ == "__main__":
    main()
