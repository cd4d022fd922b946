"""Mixed precision on a CPU: the halved export and sample path a GPU run takes, under test.

On CUDA the exported pipeline is fp16; a CPU run in bf16 exports bf16, so the same code path
(unwrap the trained modules, cast the whole pipeline to one half dtype, sample) runs here.
"""

import zipfile

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from tests.trainer.helpers import train
from trainer import export
from trainer.accelerator import make_accelerator
from trainer.config import MixedPrecision


def test_unwrapped_modules_return_their_own_dtype(tiny_sd15):
    from diffusers import UNet2DConditionModel

    accelerator = make_accelerator(MixedPrecision.BF16, 1)
    unet = UNet2DConditionModel.from_pretrained(tiny_sd15, subfolder="unet")
    prepared = accelerator.prepare(unet)
    plain = export.unwrap(accelerator, prepared).to(torch.bfloat16)
    latents = torch.randn(1, 4, 8, 8, dtype=torch.bfloat16)
    context = torch.randn(1, 5, plain.config.cross_attention_dim, dtype=torch.bfloat16)
    assert plain(latents, 10, context).sample.dtype == torch.bfloat16
    assert not plain.training


def test_a_bf16_run_samples_and_exports_in_one_half_dtype(
    monkeypatch, tmp_path, tiny_sd15, photo_zip
):
    result = train(
        monkeypatch,
        tiny_sd15,
        photo_zip,
        tmp_path / "work",
        mixed_precision="bf16",
        save_sample_prompt="a photo of sks cat",
        n_save_sample=2,
        save_infer_steps=2,
    )
    with zipfile.ZipFile(result.output) as archive:
        archive.extractall(tmp_path / "out")
    for part in (
        "unet/diffusion_pytorch_model",
        "text_encoder/model",
        "vae/diffusion_pytorch_model",
    ):
        with safe_open(tmp_path / "out" / f"{part}.safetensors", "pt") as weights:
            dtypes = {weights.get_slice(k).get_dtype() for k in weights.keys()}  # noqa: SIM118
        assert dtypes == {"BF16"}, (part, dtypes)
    for sample in ("0.png", "1.png"):
        pixels = np.asarray(Image.open(tmp_path / "out" / "samples" / sample), dtype=float)
        assert pixels.std() > 1.0  # an image, not a flat (NaN -> black) one
