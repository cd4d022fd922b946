"""The fast path's choices, and the compile cache that spares a cold boot its compile."""

import json
import os
import subprocess
import sys

import pytest
import torch

from core.errors import UserError
from core.fast_path import CPU_DEFAULT, GPU_DEFAULT, FastPath, device_and_dtype

COMPILE_SMALL = """
import json, sys, torch
from torch._dynamo.utils import counters
from core.fast_path import load_compile_cache, save_compile_cache
mode, path = sys.argv[1], sys.argv[2]
loaded = load_compile_cache(path) if mode == "load" else None
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 2))
model.compile()
output = model(torch.ones(3, 8)).sum().item()
saved = str(save_compile_cache(path)) if mode == "save" else None
print("RESULT " + json.dumps({"loaded": loaded, "saved": saved, "output": output,
                              "inductor": dict(counters["inductor"])}))
"""


def test_each_device_has_its_default_and_the_environment_can_change_it(monkeypatch):
    monkeypatch.delenv("INFERENCE_OPTIMIZATIONS", raising=False)
    assert FastPath.from_env("cuda").chosen == GPU_DEFAULT
    assert FastPath.from_env("cpu").chosen == CPU_DEFAULT == frozenset()
    assert {"compile", "channels_last", "tf32", "batch"} == GPU_DEFAULT
    monkeypatch.setenv("INFERENCE_OPTIMIZATIONS", "none")
    assert FastPath.from_env("cuda").chosen == frozenset()
    monkeypatch.setenv("INFERENCE_OPTIMIZATIONS", " channels_last , batch")
    fast = FastPath.from_env("cuda")
    assert fast.chosen == {"channels_last", "batch"} and fast.batches and not fast.compiles
    monkeypatch.setenv("INFERENCE_OPTIMIZATIONS", "compile,warp")
    with pytest.raises(UserError, match="unknown warp; allowed: tf32, channels_last, compile"):
        FastPath.from_env("cuda")


def test_the_dtype_can_be_chosen_on_any_device(monkeypatch):
    monkeypatch.setenv("INFERENCE_DTYPE", "bf16")
    assert device_and_dtype()[1] is torch.bfloat16
    monkeypatch.setenv("INFERENCE_DTYPE", "fp8")
    with pytest.raises(UserError, match="INFERENCE_DTYPE='fp8' is not one of fp32, fp16, bf16"):
        device_and_dtype()


def test_channels_last_is_applied_in_place(tiny_sd15):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd15, subfolder="unet")
    FastPath(frozenset({"channels_last"})).apply(formatted=[unet], compiled=[unet])
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def compile_in_a_fresh_process(mode: str, path, inductor_dir) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(inductor_dir), "PYTHONPATH": "."}
    output = subprocess.run(
        [sys.executable, "-c", COMPILE_SMALL, mode, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in output.splitlines() if row.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_a_saved_compile_cache_is_a_hit_in_a_fresh_process(tmp_path):
    """A cold boot elsewhere (empty inductor cache) reuses what the build compiled."""
    cache = tmp_path / "compile-cache" / "artifacts.bin"
    built = compile_in_a_fresh_process("save", cache, tmp_path / "inductor-build")
    assert built["saved"] == str(cache) and cache.stat().st_size > 0
    assert built["inductor"].get("fxgraph_cache_miss", 0) >= 1
    booted = compile_in_a_fresh_process("load", cache, tmp_path / "inductor-boot")
    assert booted["loaded"] is True and booted["output"] == built["output"]
    assert booted["inductor"].get("fxgraph_cache_hit", 0) >= 1
    assert booted["inductor"].get("fxgraph_cache_miss", 0) == 0
    cold = compile_in_a_fresh_process("none", cache, tmp_path / "inductor-cold")
    assert cold["inductor"].get("fxgraph_cache_miss", 0) >= 1  # without it: a compile


@pytest.mark.slow
def test_the_compiled_engine_warms_up_in_setup_and_matches_eager(
    tiny_sd15, template_weights, monkeypatch, caplog
):
    """The GPU's compiled path on a CPU. Regional (the transformer blocks): a full compile of
    the tiny UNet takes over 6 minutes on two CPU cores; tests/gpu compiles it in full."""
    import logging

    import numpy as np

    from core.pipelines import Engine
    from core.requests import GenerationRequest
    from core.weights import find

    request = GenerationRequest(
        prompt="a cat", seed=7, num_outputs=2, width=64, height=64, num_inference_steps=3
    )
    eager = Engine.load(find(tiny_sd15), template_dir=template_weights("vanilla"))
    expected = [np.asarray(image, dtype=int) for image in eager.generate(request)]
    monkeypatch.setenv("INFERENCE_OPTIMIZATIONS", "compile_regional,channels_last,batch")
    with caplog.at_level(logging.INFO):
        engine = Engine.load(find(tiny_sd15), template_dir=template_weights("vanilla"))
    assert "warmed up (compiled) at 512x512" in caplog.text
    compiled = [np.asarray(image, dtype=int) for image in engine.generate(request)]
    for one, other in zip(compiled, expected, strict=True):
        assert np.abs(one - other).max() <= 2
