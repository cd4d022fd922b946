"""The API's test fixtures: one real registry for the session, versions pushed with script/push.

Each test module runs its own API (and workers) on its own home (database, queue, files); the
versions pushed here are found in the registry by digest the first time a module uses them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from api.registry_server import LocalRegistry
from buildkit import schema, targets
from buildkit.cog_client import free_port
from tests.api.helpers import REPO

QUICK_TRAINER = Path(__file__).resolve().parent / "quick_trainer"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    with LocalRegistry(tmp_path_factory.mktemp("registry"), free_port()) as running:
        yield running


def env_for(home: Path, registry_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DREAMBOOTH_HOME": str(home),
        "DREAMBOOTH_REGISTRY_URL": registry_url,
        "DREAMBOOTH_ALLOW_PRIVATE_URLS": "1",
        "DREAMBOOTH_LEASE_SECONDS": "4",
        "DREAMBOOTH_WEBHOOK_BACKOFF": "0.3",
        "DREAMBOOTH_WEBHOOK_ATTEMPTS": "6",
        "PYTHONPATH": str(REPO),
        "COG_LOG_LEVEL": "warning",
        **extra,
    }


@pytest.fixture
def make_env(tmp_path, registry):
    """make_env(**extra) -> the environment of an API on a fresh home under tmp_path."""

    def make(**extra: str) -> dict[str, str]:
        return env_for(tmp_path / "home", registry.url, **extra)

    return make


def push(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(REPO / "script" / "push"), *args], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-3000:]
    digest = done.stdout.strip().splitlines()[-1]
    assert digest.startswith("sha256:") and len(digest) == 71, done.stdout
    return digest


@pytest.fixture(scope="session")
def push_env(tmp_path_factory, registry):
    return env_for(tmp_path_factory.mktemp("push-home"), registry.url)


@pytest.fixture(scope="session")
def trainer_version(push_env, tiny_sd15) -> str:
    """The real trainer, with the tiny SD1.5 as its base weights, pushed by script/push."""
    return push(push_env, "trainer", "--base-weights", str(tiny_sd15))


@pytest.fixture(scope="session")
def vanilla_context(tmp_path_factory, template_weights) -> Path:
    """The vanilla template's build context, as script/build-template writes it."""
    from buildkit import build_template

    out = tmp_path_factory.mktemp("vanilla-context") / "ctx"
    return build_template.build("vanilla", out, None, template_weights("vanilla"))


@pytest.fixture(scope="session")
def template_version(push_env, vanilla_context) -> str:
    """The vanilla template (weight-less), pushed by script/push."""
    return push(push_env, "vanilla", "--context", str(vanilla_context))


@pytest.fixture(scope="session")
def quick_context(tmp_path_factory) -> Path:
    context = tmp_path_factory.mktemp("quick-trainer")
    shutil.copy2(QUICK_TRAINER / "predict.py", context / "predict.py")
    target = targets.Target(name="trainer", run="predict.py:Predictor")
    (context / "cog.yaml").write_text(target.cog_yaml())
    schema.write(context, target.run, None)
    return context


@pytest.fixture(scope="session")
def quick_version(push_env, quick_context) -> str:
    """tests/api/quick_trainer as a trainer version: returns an output.zip in a moment."""
    return push(push_env, "trainer", "--context", str(quick_context), "--repository", "cog/quick")


def seed_payload(trainer: str, template: str, url: str, webhook: str, **extra_input) -> dict:
    """Seed 000's payload: bare 64-hex versions, the same fields, nothing added."""
    return {
        "input": {
            "instance_prompt": "a photo of a cjw person",
            "class_prompt": "a photo of a person",
            "instance_data": url,
            "max_train_steps": 2000,
            **extra_input,
        },
        "trainer_version": trainer.removeprefix("sha256:"),
        "template_version": template.removeprefix("sha256:"),
        "model": "yourusername/yourmodel",
        "notes": "notes about this dreambooth training",
        "webhook_completed": webhook,
    }
