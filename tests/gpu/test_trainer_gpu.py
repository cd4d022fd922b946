"""The trainer on a GPU: real-shape SD1.5 (random weights), 512 px, in bf16 and fp16.

Everything else is pinned by the CPU suite; these show what only a GPU runs: CUDA autocast,
the fp16 gradient scaler, 8-bit Adam's CUDA kernels, fused AdamW, TF32, xformers when present,
and the fp16 export with samples (the path that crashed, ../shared/reference/gpu.md).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from buildkit.cog_client import CogServer, data_uri, decode_data_uri, succeeded
from tests.trainer.helpers import train

pytestmark = pytest.mark.gpu

GPU_RUN = dict(
    resolution=512,
    max_train_steps=10,
    learning_rate=5e-6,
    num_class_images=2,
    sample_batch_size=2,
    save_sample_prompt="a photo of sks cat",
    n_save_sample=2,
    save_infer_steps=4,
)


def unet_dtypes(folder) -> set[str]:
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    with safe_open(path, "pt") as weights:
        return {weights.get_slice(k).get_dtype() for k in weights.keys()}  # noqa: SIM118


def samples_are_images(folder) -> bool:
    pixels = [np.asarray(Image.open(p), dtype=float) for p in sorted(folder.glob("samples/*.png"))]
    return len(pixels) == 2 and all(np.isfinite(p).all() and p.std() > 1.0 for p in pixels)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("memory_savers", [False, True])
def test_half_precision_training_with_prior_and_samples_exports_fp16(
    monkeypatch, tmp_path, real_sd15, photo_zip, precision, memory_savers
):
    result = train(
        monkeypatch,
        real_sd15,
        photo_zip,
        tmp_path / "work",
        mixed_precision=precision,
        with_prior_preservation=True,
        use_8bit_adam=memory_savers,
        gradient_checkpointing=memory_savers,
        **GPU_RUN,
    )
    assert result.steps == 10 and np.isfinite(result.summary["final_loss"])
    zipfile.ZipFile(result.output).extractall(tmp_path / "out")
    assert unet_dtypes(tmp_path / "out") == {"F16"}
    assert samples_are_images(tmp_path / "out")


def test_the_trainer_server_trains_on_the_gpu_and_returns_output_zip(
    tmp_path, real_sd15, photo_zip
):
    env = {
        "BASE_MODEL_DIR": str(real_sd15),
        "TRAINER_WORK_DIR": str(tmp_path / "work"),
        "COG_TEST_LOG_DIR": str(tmp_path),
    }
    with CogServer("trainer", env=env) as server:
        status, body = server.predict(
            instance_data=data_uri(photo_zip, "application/zip"),
            instance_prompt="a photo of sks cat",
            class_prompt="a photo of a cat",
            **{**GPU_RUN, "max_train_steps": 5},
        )
    succeeded(status, body)
    with zipfile.ZipFile(io.BytesIO(decode_data_uri(body["output"]))) as archive:
        archive.extractall(tmp_path / "out")
    assert unet_dtypes(tmp_path / "out") == {"F16"} and samples_are_images(tmp_path / "out")
    assert "step 5/5 | loss" in body["logs"]
