"""Real-weight downloads cannot run here; they must fail with a message, not a stack trace."""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = "script/download-weights"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}  # a closed port: no hub here
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ("base", "--dir", "unused"),
        ("base", "--family", "sdxl", "--dir", "unused"),
        ("preprocess", "--dir", "unused"),
        ("template", "controlnet-depth", "--dir", "unused"),
    ],
)
def test_without_network_it_says_the_hub_is_unreachable(args):
    result = run(*args)
    assert result.returncode != 0
    assert "not reachable" in result.stderr and "make-tiny-weights" in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path("unused").exists()


def test_an_unknown_template_is_named_with_the_choices():
    result = run("template", "controlnet-foo")
    assert result.returncode != 0
    assert "unknown template 'controlnet-foo'" in result.stderr and "vanilla" in result.stderr
