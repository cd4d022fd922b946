"""The trainer learns, is deterministic, resumes exactly, and writes the contract."""

import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

from core.manifest import Family, Manifest, Method, Part
from tests.pipeline_check import generate
from tests.trainer.helpers import cli, instance_loss, same, train, weights
from trainer.photos import load_archive


def test_loss_on_the_instance_photos_falls_clearly(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    result = train(
        monkeypatch,
        tiny_sd15,
        photo_zip,
        tmp_path / "work",
        max_train_steps=200,
        learning_rate=5e-4,
        with_prior_preservation=False,
        center_crop=True,
    )
    out = tmp_path / "out"
    zipfile.ZipFile(result.output).extractall(out)
    photos = [
        p.image
        for p in load_archive(photo_zip, tmp_path / "x", label="instance_data", resolution=64)
    ]
    before = instance_loss(tiny_sd15, photos, "a photo of sks cat", tiny_sd15)
    after = instance_loss(out, photos, "a photo of sks cat", tiny_sd15)
    assert after < 0.75 * before, (before, after)


def test_same_seed_same_weights_other_seed_other_weights(
    monkeypatch, tmp_path, tiny_sd15, photo_zip
):
    a = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "a", hflip=True, offset_noise=0.1)
    b = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "b", hflip=True, offset_noise=0.1)
    c = train(
        monkeypatch, tiny_sd15, photo_zip, tmp_path / "c", hflip=True, offset_noise=0.1, seed=1
    )
    assert same(weights(a.output), weights(b.output))
    assert same(weights(a.output, "text_encoder"), weights(b.output, "text_encoder"))
    assert not same(weights(a.output), weights(c.output))


def test_output_zip_is_the_contract_templates_read(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    result = train(
        monkeypatch,
        tiny_sd15,
        photo_zip,
        tmp_path / "work",
        save_sample_prompt="a photo of sks cat on a beach",
        n_save_sample=2,
        save_infer_steps=2,
    )
    out = tmp_path / "out"
    zipfile.ZipFile(result.output).extractall(out)
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "model_index.json",
        "manifest.json",
        "args.json",
        "samples/0.png",
        "samples/1.png",
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    } <= names
    assert not [n for n in names if n.endswith((".bin", ".ckpt", ".pt", ".pth", ".pkl"))]
    manifest = Manifest.read(out)
    assert (manifest.family, manifest.method, manifest.token) == (
        Family.SD15,
        Method.DREAMBOOTH,
        "sks",
    )
    assert manifest.trained_parts == (Part.UNET, Part.TEXT_ENCODER)
    assert manifest.instance_prompt == "a photo of sks cat"
    args = json.loads((out / "args.json").read_text())
    assert args["max_train_steps"] == 3 and args["mixed_precision"] == "no"
    index = json.loads((out / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None]


def test_loaded_output_generates_an_image(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    result = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "work")
    zipfile.ZipFile(result.output).extractall(tmp_path / "out")
    assert generate(tmp_path / "out").size == (64, 64)


def run_cli(work: Path, base: Path, photos: Path, steps: int) -> subprocess.Popen:
    command, env = cli(
        work, base, photos, steps, "--num_class_images", "1", "--checkpointing_steps", "10"
    )
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_killed_run_resumes_and_ends_as_if_never_interrupted(tmp_path, tiny_sd15, photo_zip):
    steps = 50  # killed after the checkpoint at step 20
    killed = run_cli(tmp_path / "work", tiny_sd15, photo_zip, steps)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "work").glob("runs/*/checkpoints/step-000020")):
        assert killed.poll() is None, killed.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    checkpoint = list((tmp_path / "work").glob("runs/*/checkpoints/step-*"))
    resumed_at = int(checkpoint[-1].name.removeprefix("step-"))
    assert resumed_at < steps

    resumed = run_cli(tmp_path / "work", tiny_sd15, photo_zip, steps)
    log, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log
    assert f"resuming from checkpoint at step {resumed_at}/{steps}" in log
    assert f"({steps} steps)" in log

    fresh = run_cli(tmp_path / "fresh", tiny_sd15, photo_zip, steps)
    fresh_log, _ = fresh.communicate(timeout=300)
    assert fresh.returncode == 0, fresh_log
    (resumed_zip,) = (tmp_path / "work").glob("runs/*/output.zip")
    (fresh_zip,) = (tmp_path / "fresh").glob("runs/*/output.zip")
    assert same(weights(resumed_zip), weights(fresh_zip))
    assert same(weights(resumed_zip, "text_encoder"), weights(fresh_zip, "text_encoder"))
