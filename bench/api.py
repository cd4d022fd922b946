"""The trainings API's own cost: what it adds to a training, build + push against the bytes of
the weights, and how many status polls it answers.

    python -m bench.api                      # quick trainer, tiny weights, CPU: about a minute
    python -m bench.api --real               # also one real (tiny) training, with its breakdown
    python -m bench.api --weights-mb 1024    # build + push with bigger weights

1. *Overhead per training* beyond the trainer's own time: from POST /v1/trainings to the signed
   webhook arriving, minus the trainer prediction's predict_time, on the quick trainer
   (tests/api/quick_trainer; median of --trainings). Reported with the trainer server's setup
   (its imports and setup(); paid by any Cog deployment on a cold start) both in and out.
2. *Build + push* of a training's weights (an output.zip of --weights-mb of stored safetensors
   bytes) on the vanilla template, against copying the same bytes to the registry once as a
   single blob: the goal is a ratio of at most 1.2 (no recompression, no second copy).
3. *GET /v1/trainings/{id}* requests per second under 50 concurrent pollers for --seconds.

Everything is real (registry, API, worker, coglet) and local. JSON on stdout and in
bench/results/api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def _env(home: Path, registry_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DREAMBOOTH_HOME": str(home),
        "DREAMBOOTH_REGISTRY_URL": registry_url,
        "DREAMBOOTH_ALLOW_PRIVATE_URLS": "1",
        "PYTHONPATH": str(REPO),
        "COG_LOG_LEVEL": "warning",
    }


def _versions(env: dict, scratch: Path) -> tuple[str, str, Path]:
    from buildkit import build_template, schema, targets
    from buildkit.tiny_templates import write_template_weights
    from tests.api.conftest import QUICK_TRAINER, push

    weights = write_template_weights("vanilla", scratch / "template-weights")
    vanilla = build_template.build("vanilla", scratch / "vanilla", None, weights)
    quick = scratch / "quick"
    quick.mkdir()
    shutil.copy2(QUICK_TRAINER / "predict.py", quick / "predict.py")
    target = targets.Target(name="trainer", run="predict.py:Predictor")
    (quick / "cog.yaml").write_text(target.cog_yaml())
    schema.write(quick, target.run, None)
    trainer = push(env, "trainer", "--context", str(quick), "--repository", "cog/quick")
    return trainer, push(env, "vanilla", "--context", str(vanilla)), vanilla


def overhead(api, token: str, trainer: str, template: str, files, count: int) -> dict:
    from tests.api.helpers import Receiver, wait_for

    receiver, client, samples = Receiver(), api.client(token), []
    for index in range(count):
        started = time.perf_counter()
        body = {
            "input": {"instance_data": files.url("photos.txt"), "seconds": 1.0, "steps": 2},
            "trainer_version": trainer,
            "template_version": template,
            "model": "bench/quick",
            "webhook_completed": receiver.url,
        }
        made = client.train(body)
        wait_for(lambda n=index: len(receiver.received) > n, 120, "the webhook", every=0.01)
        total = time.perf_counter() - started
        done = client.training(made["id"])
        predict, setup = done["metrics"]["predict_time"], done["metrics"]["setup_time"]
        samples.append({"total": total, "predict_time": predict, "setup_time": setup})
    receiver.close()
    median = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    return {
        "trainings": count,
        "median_total_s": round(median["total"], 3),
        "median_predict_time_s": round(median["predict_time"], 3),
        "median_trainer_setup_s": round(median["setup_time"], 3),
        "overhead_s": round(median["total"] - median["predict_time"], 3),
        "overhead_without_trainer_setup_s": round(
            median["total"] - median["predict_time"] - median["setup_time"], 3
        ),
        "goal_s": 2.0,
    }


def build_push(registry_url: str, template: str, scratch: Path, megabytes: int) -> dict:
    from api import build
    from api.registry import Registry

    weights = scratch / "output.zip"
    with zipfile.ZipFile(weights, "w") as archive:
        archive.writestr("model_index.json", "{}")
        with archive.open("unet/diffusion_pytorch_model.safetensors", "w") as out:
            for _ in range(megabytes):
                out.write(os.urandom(1024 * 1024))
    size = weights.stat().st_size
    with Registry(registry_url, timeout=600) as registry:

        def copy_once() -> None:
            with weights.open("rb") as source:
                registry.upload("bench/copy", iter(lambda: source.read(4 * 1024 * 1024), b""))

        def ours(tag: str) -> None:
            build.build_version(registry, "cog/vanilla", template, weights, "bench/w", tag, {})

        copies, builds = [], []
        for run in range(3):  # alternate, so the page cache treats both alike
            started = time.perf_counter()
            copy_once()
            copies.append(time.perf_counter() - started)
            started = time.perf_counter()
            ours(f"run{run}")
            builds.append(time.perf_counter() - started)
    copy_s, build_s = statistics.median(copies), statistics.median(builds)
    return {
        "weights_bytes": size,
        "copy_once_s": round(copy_s, 3),
        "build_push_s": round(build_s, 3),
        "ratio": round(build_s / copy_s, 3),
        "build_push_mb_per_s": round(size / 1e6 / build_s, 1),
        "goal_ratio": 1.2,
    }


async def _poll(url: str, token: str, concurrency: int, seconds: float) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    count, errors, deadline = 0, 0, time.perf_counter() + seconds
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def poller() -> None:
            nonlocal count, errors
            while time.perf_counter() < deadline:
                response = await client.get(url)
                count += 1
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(poller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "pollers": concurrency,
        "seconds": round(elapsed, 2),
        "requests": count,
        "errors": errors,
        "requests_per_s": round(count / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> None:
    from api.registry_server import LocalRegistry
    from buildkit.cog_client import free_port
    from tests.api.helpers import API, Files, token, worker

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainings", type=int, default=5)
    parser.add_argument("--weights-mb", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--real", action="store_true", help="also time one real tiny training")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-api-", dir=RESULTS))
    registry = LocalRegistry(scratch / "registry", free_port()).start()
    env = _env(scratch / "home", registry.url)
    api = worker_process = files = None
    try:
        trainer, template, _ = _versions(env, scratch)
        (scratch / "files").mkdir()
        (scratch / "files" / "photos.txt").write_text("bench\n")
        files = Files(scratch / "files")
        api = API(env, scratch).start()
        worker_process = worker(env, scratch, "bench-0")
        owner_token = token(env, "bench")
        result = {
            "overhead": overhead(api, owner_token, trainer, template, files, args.trainings),
            "build_push": build_push(registry.url, template, scratch, args.weights_mb),
        }
        ids = api.client(owner_token).trainings(limit=1)["results"][0]["id"]
        result["status_polls"] = asyncio.run(
            _poll(f"{api.url}/v1/trainings/{ids}", owner_token, 50, args.seconds)
        )
    finally:
        for process in (worker_process, api):
            if process:
                process.stop()
        if files:
            files.close()
        registry.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    (RESULTS / "api.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
