"""What a request's `lora_weights` costs: a request with a cached LoRA against one without.

    python -m bench.swap                       # tiny weights, CPU
    python -m bench.swap --shape sd15 --steps 30 --size 512   # real-shape SD1.5, random (GPU)

One engine (core/pipelines.py) serves alternately a request without lora_weights and one with
the same LoRA file, which after its first request is cached (core/lora_uploads.py): the
difference is the switch (activating the LoRA, the scale per call, putting it back) plus the
LoRA's own compute, and the digest of the file. The first load is reported apart. The LoRA is
random, rank 8 on the UNet's attention, saved with diffusers' save_lora_weights.
JSON on stdout and in bench/results/swap-<shape>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def write_lora(weights: Path, folder: Path, rank: int = 8) -> Path:
    """A random LoRA for the UNet in `weights`, as a .safetensors file."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(weights, subfolder="unet")
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers)
    return folder / "pytorch_lora_weights.safetensors"


def timed(engine, request) -> float:
    start = time.perf_counter()
    list(engine.generate(request))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(args, weights: Path, template: Path, lora: Path) -> dict:
    from core.pipelines import Engine
    from core.requests import GenerationRequest
    from core.weights import find

    engine = Engine.load(find(weights), template_dir=template)
    common = dict(
        prompt="a photo of a cat",
        width=args.size,
        height=args.size,
        num_inference_steps=args.steps,
        disable_safety_check=True,
        seed=0,
    )
    plain, with_lora = GenerationRequest(**common), GenerationRequest(**common, lora_weights=lora)
    timed(engine, plain)  # warm-up
    first_load = timed(engine, with_lora)
    times = {"without": [], "with_cached_lora": []}
    for _ in range(args.repeats):
        times["without"].append(timed(engine, plain))
        times["with_cached_lora"].append(timed(engine, with_lora))
    medians = {side: round(statistics.median(values), 4) for side, values in times.items()}
    return {"request_s": medians, "first_lora_request_s": round(first_load, 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    args.size = args.size or (64 if args.shape == "tiny" else 512)
    from buildkit.tiny_templates import write_template_weights

    if args.shape == "tiny":
        from buildkit.tiny import write_sd15
    else:
        from buildkit.real_shape import write_sd15
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        weights = write_sd15(folder / "weights")
        template = write_template_weights("vanilla", folder / "template", shape=args.shape)
        sides = measure(args, weights, template, write_lora(weights, folder / "lora"))
    medians = sides["request_s"]
    result = {
        "benchmark": "swap",
        "settings": vars(args),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        **sides,
        "ratio_cached_lora_to_without": round(medians["with_cached_lora"] / medians["without"], 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"swap-{args.shape}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
