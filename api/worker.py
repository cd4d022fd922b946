"""A worker: a huey consumer with one slot (one GPU), running one training at a time.

    dreambooth worker --name gpu0 --gpu 0

A training is *claimed* by one atomic UPDATE (slot IS NULL → this worker), so a task delivered
twice, or re-enqueued by recovery, runs once. The worker then forks the training's supervisor
(api/supervisor.py) into its own session and waits for it. Killed and restarted under the same
name, a worker first re-attaches to the supervisors of its slot that are still alive (their GPU
is busy, so it takes no new work until they finish) and restarts those that died.

Recovery runs in every worker: a training whose supervisor and worker have both stopped
heart-beating is put back in the queue, and so is a queued training whose message was lost; a
webhook delivery left behind is attempted again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from api import db, supervisor
from api.jobs import jobs
from api.models import Delivery, Training, Worker, now
from api.settings import Settings, load

log = logging.getLogger("dreambooth.worker")
ACTIVE = ("starting", "processing")
MAX_SUPERVISOR_STARTS = 3


def claim(settings: Settings, training_id: str) -> bool:
    with db.session(settings.database_url) as session:
        result = session.execute(
            update(Training)
            .where(
                Training.id == training_id,
                Training.slot.is_(None),
                Training.status.in_(ACTIVE),
            )
            .values(
                slot=settings.worker_name,
                gpu=settings.gpu,
                status="processing",
                heartbeat_at=None,
                supervisor_pid=None,
            )
        )
        return result.rowcount == 1


def run_training(training_id: str) -> None:
    settings = load()
    if claim(settings, training_id):
        carry(settings, training_id)


class Child:
    """A supervisor forked from this worker (it starts in milliseconds: the modules are loaded)."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _spawn(settings: Settings, training_id: str) -> Child:
    folder = settings.training_dir(training_id)
    folder.mkdir(parents=True, exist_ok=True)
    with db.session(settings.database_url) as session:
        row = session.get(Training, training_id)
        row.attempts += 1
        row.started_at = row.started_at or now()
        row.heartbeat_at = now()
    log_fd = os.open(folder / "supervisor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.fork()
    if pid == 0:  # the child: its own session, so it outlives this worker
        code = 1
        try:
            os.setsid()
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            for sig in (signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            db.forget_after_fork()
            jobs.cache_clear()
            supervisor.main([training_id])
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(log_fd)
    with db.session(settings.database_url) as session:
        row = session.get(Training, training_id)
        row.supervisor_pid, row.supervisor_host = pid, socket.gethostname()
    return Child(pid)


def _state(settings: Settings, training_id: str) -> Training:
    with db.session(settings.database_url) as session:
        return session.get(Training, training_id)


def alive(settings: Settings, t: Training) -> bool:
    """Is this training's supervisor still running (by its heartbeat, and its pid here)?"""
    if t.heartbeat_at is None:
        return False
    fresh = (now() - t.heartbeat_at).total_seconds() < settings.lease_seconds
    if fresh and t.supervisor_pid and t.supervisor_host == socket.gethostname():
        try:
            os.kill(t.supervisor_pid, 0)
        except ProcessLookupError:
            return False
    return fresh


def carry(settings: Settings, training_id: str) -> None:
    """Run (or re-attach to) this training's supervisor until the training is terminal."""
    process = None
    while True:
        t = _state(settings, training_id)
        if t.status not in ACTIVE:
            return
        if process is None and not alive(settings, t):
            if t.attempts >= MAX_SUPERVISOR_STARTS:
                return _give_up(settings, training_id, t.attempts)
            _kill_leftovers(t)
            process = _spawn(settings, training_id)
        if process is not None and process.poll() is not None:
            process = None  # it exited; the loop sees whether it finished
            continue
        time.sleep(0.1)


def _kill_leftovers(t: Training) -> None:
    """A dead supervisor may leave its trainer's server running: end both before starting again."""
    if t.supervisor_host != socket.gethostname():
        return
    for pid in (t.supervisor_pid, t.trainer_pid):
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _give_up(settings: Settings, training_id: str, attempts: int) -> None:
    supervisor.Supervisor(settings, training_id).finish(
        "failed", f"the training process stopped {attempts} times without finishing"
    )


def reattach(settings: Settings) -> None:
    """At start-up: finish what this slot was doing before taking anything new."""
    with db.session(settings.database_url) as session:
        mine = session.scalars(
            select(Training.id).where(
                Training.slot == settings.worker_name, Training.status.in_(ACTIVE)
            )
        ).all()
    for training_id in mine:
        log.info("re-attaching to training %s", training_id)
        carry(settings, training_id)


def recover(settings: Settings) -> None:
    """Put back what nobody is carrying: trainings, lost queue messages, webhook retries."""
    lease = timedelta(seconds=settings.lease_seconds)
    stale = now() - lease
    with db.session(settings.database_url) as session:
        live = set(session.scalars(select(Worker.name).where(Worker.heartbeat_at > stale)))
        orphans = session.scalars(
            select(Training).where(
                Training.status.in_(ACTIVE),
                Training.slot.is_not(None),
                or_(Training.heartbeat_at.is_(None), Training.heartbeat_at < stale),
            )
        ).all()
        requeue = [t.id for t in orphans if t.slot not in live]
        for t in orphans:
            if t.slot not in live:
                t.slot = None
        lost = session.scalars(
            select(Training).where(
                Training.status == "starting",
                Training.slot.is_(None),
                Training.enqueued_at < now() - 3 * lease,
            )
        ).all()
        pending = jobs().pending_trainings() if lost else set()
        for t in lost:
            if t.id not in pending:
                requeue.append(t.id)
                t.enqueued_at = now()
        late = session.scalars(
            select(Delivery).where(
                and_(Delivery.status == "pending", Delivery.next_attempt_at < now() - 2 * lease)
            )
        ).all()
        for delivery in late:
            delivery.next_attempt_at = now() + lease
        redeliver = [d.id for d in late]
    for training_id in dict.fromkeys(requeue):
        log.info("re-enqueuing training %s", training_id)
        jobs().run_training(training_id)
    for delivery_id in redeliver:
        jobs().deliver(delivery_id)


def _beat(settings: Settings, stop: threading.Event) -> None:
    interval = max(0.5, settings.lease_seconds / 4)
    while not stop.wait(interval):
        with contextlib.suppress(Exception):
            with db.session(settings.database_url) as session:
                row = session.get(Worker, settings.worker_name)
                row.heartbeat_at, row.pid = now(), os.getpid()
            recover(settings)


def serve(settings: Settings) -> None:
    """Run this worker until SIGTERM/SIGINT."""
    db.migrate(settings.database_url)
    with db.session(settings.database_url) as session:
        row = session.get(Worker, settings.worker_name) or Worker(name=settings.worker_name)
        row.host, row.pid, row.gpu, row.heartbeat_at = (
            socket.gethostname(),
            os.getpid(),
            settings.gpu,
            now(),
        )
        session.merge(row)
    stop = threading.Event()
    threading.Thread(target=_beat, args=(settings, stop), daemon=True).start()
    reattach(settings)
    consumer = jobs().huey.create_consumer(
        workers=1,
        worker_type="thread",
        initial_delay=0.05,
        backoff=1.2,
        max_delay=0.5,
        scheduler_interval=1,
        periodic=False,
    )
    log.info("worker %s ready (gpu %s)", settings.worker_name, settings.gpu)
    try:
        consumer.run()
    finally:
        stop.set()


def main(name: str | None = None, gpu: str | None = None) -> None:
    if name:
        os.environ["DREAMBOOTH_WORKER_NAME"] = name
    if gpu is not None:
        os.environ["DREAMBOOTH_GPU"] = gpu
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(load())
