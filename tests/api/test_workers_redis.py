"""Several workers on a real Redis (Debian's redis-server, started by api/redis_server.py).

Two workers with one GPU each train in parallel and never on the same GPU; twelve trainings
queued at once (six per worker) all finish, each run exactly once (the quick trainer writes a
ledger line per run), each with its own version and one webhook.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from api.redis_server import LocalRedis
from buildkit.cog_client import free_port
from tests.api.conftest import env_for
from tests.api.helpers import API, Files, Receiver, token, wait_for, worker

QUEUED = 12  # six per worker, all queued before the first ends; each run costs a server start


@pytest.fixture(scope="module")
def service(tmp_path_factory, registry, quick_version, template_version):
    root = tmp_path_factory.mktemp("redis")
    redis = LocalRedis(root / "redis", free_port()).start()
    ledger = root / "ledger.txt"
    env = env_for(
        root / "home",
        registry.url,
        DREAMBOOTH_REDIS_URL=redis.url,
        QUICK_TRAINER_LEDGER=str(ledger),
    )
    (root / "files").mkdir()
    files = Files(root / "files")
    api = API(env, root).start()
    workers = [worker(env, root, f"gpu{i}", gpu=str(i)) for i in range(2)]
    yield dict(
        root=root,
        env=env,
        api=api,
        files=files,
        ledger=ledger,
        token=token(env, "erin"),
        trainer=quick_version,
        template=template_version,
    )
    for w in workers:
        w.stop()
    api.stop()
    files.close()
    redis.stop()


def submit(service, name: str, webhook: str | None = None, **inputs) -> str:
    (service["root"] / "files" / name).write_text(f"{name}\n")
    body = {
        "input": {"instance_data": service["files"].url(name), **inputs},
        "trainer_version": service["trainer"],
        "template_version": service["template"],
        "model": "erin/many",
        **({"webhook_completed": webhook} if webhook else {}),
    }
    return service["api"].client(service["token"]).train(body)["id"]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_two_workers_train_in_parallel_on_different_gpus(service):
    client = service["api"].client(service["token"])
    ids = [submit(service, f"parallel-{i}", seconds=4, steps=4) for i in range(2)]
    done = [client.wait(i, timeout=120) for i in ids]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    gpus = {d["logs"].split("on gpu ")[1].split()[0] for d in done}
    assert gpus == {"0", "1"}
    (a_start, a_end), (b_start, b_end) = (
        (when(d["started_at"]), when(d["completed_at"])) for d in done
    )
    assert a_start < b_end and b_start < a_end  # the two overlapped in time


def test_a_queue_six_deep_per_worker_runs_each_training_exactly_once(service):
    receiver = Receiver()
    client = service["api"].client(service["token"])
    service["ledger"].write_text("")
    ids = [submit(service, f"batch-{i:02d}", webhook=receiver.url) for i in range(QUEUED)]
    done = {i: client.wait(i, timeout=900, every=1.0) for i in ids}
    assert Counter(d["status"] for d in done.values()) == {"succeeded": QUEUED}
    runs = Counter(line.split()[0] for line in service["ledger"].read_text().splitlines())
    assert runs == {f"batch-{i:02d}": 1 for i in range(QUEUED)}
    versions = {d["version"] for d in done.values()}
    assert len(versions) == QUEUED
    listed = {v["id"] for v in client.versions("erin/many")}
    assert versions <= listed
    wait_for(lambda: len(receiver.received) >= QUEUED, 60, "a webhook per training")
    assert sorted(b["id"] for b in receiver.bodies()) == sorted(ids)
    receiver.close()
