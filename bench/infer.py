"""Template speed: setup() against reading the weights, and per-image latency against diffusers.

    python -m bench.infer                                        # tiny weights, CPU
    python -m bench.infer --shape sd15 --size 512 --steps 30     # real-shape SD1.5, random (GPU)
    INFERENCE_OPTIMIZATIONS=channels_last,compile python -m bench.infer --shape sd15 ...

Each side runs in its own child process. `setup` is the vanilla template's setup() (weights,
prompt encoder, safety checker), compared with reading every weight file once more (both warm,
so the ratio is our overhead beyond I/O); the first setup in a process also pays for importing
diffusers' pipeline modules, reported apart. Latency is one image through the template's request
path (compel, fresh scheduler, safety check, PNG) against a bare StableDiffusionPipeline call
with the same weights, scheduler, steps, guidance and size. Medians of --repeats after a warm-up.
JSON on stdout and in bench/results/infer-<shape>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench import workers

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "a photo of sks cat on the moon"


def read_all(folder: Path) -> float:
    started = time.perf_counter()
    for path in folder.rglob("*"):
        if path.is_file():
            path.read_bytes()
    return time.perf_counter() - started


def timed(function, repeats: int) -> float:
    function()  # warm-up (and compile, when asked for)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def ours(args, weights: Path, template: Path) -> dict:
    os.environ.update(
        WEIGHTS_DIR=str(weights), TEMPLATE_WEIGHTS_DIR=str(template), TEMPLATE="vanilla"
    )
    from templates.predict import Vanilla

    read_all(weights)  # warm the page cache for both measurements
    read = read_all(weights)
    runner = Vanilla()
    started = time.perf_counter()
    runner.setup()  # the first setup also imports diffusers' pipeline modules
    first = time.perf_counter() - started
    started = time.perf_counter()
    runner.setup()
    setup = time.perf_counter() - started
    inputs = dict(
        prompt=PROMPT,
        negative_prompt=None,
        image=None,
        mask=None,
        width=args.size,
        height=args.size,
        num_outputs=1,
        num_inference_steps=args.steps,
        guidance_scale=7.5,
        prompt_strength=0.8,
        scheduler="DPMSolverMultistep",
        seed=1,
        disable_safety_check=False,
    )
    latency = timed(lambda: list(runner.generate(inputs)), args.repeats)
    return {"first_setup_s": first, "setup_s": setup, "read_weights_s": read, "image_s": latency}


def baseline(args, weights: Path) -> dict:
    started = time.perf_counter()
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    imports = time.perf_counter() - started
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    started = time.perf_counter()
    pipeline = StableDiffusionPipeline.from_pretrained(
        weights, safety_checker=None, dtype=dtype
    ).to(device)
    load = time.perf_counter() - started
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)

    def one():
        pipeline(
            PROMPT,
            num_inference_steps=args.steps,
            guidance_scale=7.5,
            height=args.size,
            width=args.size,
            generator=torch.Generator().manual_seed(1),
        ).images[0]

    return {"import_s": imports, "from_pretrained_s": load, "image_s": timed(one, args.repeats)}


def child(args, side: str, weights: Path, template: Path) -> dict:
    flags = [
        "--weights",
        str(weights),
        "--template",
        str(template),
        "--shape",
        args.shape,
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
    ]
    return workers.run("bench.infer", side, flags)


def make_weights(args, folder: Path) -> tuple[Path, Path]:
    from buildkit.tiny_templates import write_template_weights

    if args.shape == "tiny":
        from buildkit.tiny import write_sd15
    else:
        from buildkit.real_shape import write_sd15
    return write_sd15(folder / "weights"), write_template_weights("vanilla", folder / "template")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--template", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = args.size or (64 if args.shape == "tiny" else 512)
    if args.worker:
        result = (
            ours(args, args.weights, args.template)
            if args.worker == "ours"
            else baseline(args, args.weights)
        )
        workers.report(result)
        return
    with tempfile.TemporaryDirectory() as folder:
        weights, template = make_weights(args, Path(folder))
        sides = {side: child(args, side, weights, template) for side in ("baseline", "ours")}
    report = {
        "benchmark": "infer",
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("worker", "weights", "template")
        },
        "optimizations": os.environ.get("INFERENCE_OPTIMIZATIONS", ""),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "baseline": sides["baseline"],
        "ours": sides["ours"],
        "ratio_setup_to_reading_weights": round(
            sides["ours"]["setup_s"] / sides["ours"]["read_weights_s"], 2
        ),
        "ratio_setup_to_from_pretrained": round(
            sides["ours"]["setup_s"] / sides["baseline"]["from_pretrained_s"], 2
        ),
        "ratio_image_latency": round(sides["ours"]["image_s"] / sides["baseline"]["image_s"], 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"infer-{args.shape}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
