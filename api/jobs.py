"""The job engine: huey, on SQLite under $DREAMBOOTH_HOME by default (one machine, no setup),
on Redis when DREAMBOOTH_REDIS_URL is set (several workers, one GPU each).

Two tasks: run a training (api/worker.py) and attempt a webhook delivery (api/webhooks.py).
A task only names its object; the database says what is left to do, so a task that runs twice,
or late, does nothing twice.
"""

from __future__ import annotations

import functools

from huey import RedisHuey, SqliteHuey

from api.settings import Settings, load

NAME = "dreambooth"


class Jobs:
    def __init__(self, settings: Settings):
        if settings.redis_url:
            self.huey = RedisHuey(NAME, url=settings.redis_url, results=False, blocking=True)
        else:
            settings.home.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(NAME, filename=str(settings.queue_path), results=False)
        self.run_training = self.huey.task(name="run_training")(_run_training)
        self.deliver = self.huey.task(name="deliver")(_deliver)

    def pending_trainings(self) -> set[str]:
        return {t.args[0] for t in self.huey.pending() if t.name == "run_training" and t.args}


@functools.cache
def jobs() -> Jobs:
    return Jobs(load())


def _run_training(training_id: str) -> None:
    from api import worker

    worker.run_training(training_id)


def _deliver(delivery_id: str) -> None:
    from api import webhooks

    wait = webhooks.attempt(load(), delivery_id)
    if wait is not None:
        jobs().deliver.schedule((delivery_id,), delay=wait)
