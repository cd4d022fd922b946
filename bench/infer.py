"""Template speed against diffusers: per-image latency, num_outputs=4 throughput, setup, boot.

    python -m bench.infer                                        # tiny weights, CPU
    python -m bench.infer --shape sd15 --size 512 --steps 30     # real-shape SD1.5, random (GPU)
    python -m bench.infer --family sdxl                          # the sdxl template, tiny, CPU
    python -m bench.infer --shape sdxl --size 1024 --steps 30    # real-shape SDXL, random (GPU)
    INFERENCE_OPTIMIZATIONS=none python -m bench.infer ...      # without the fast path

- latency: one image through the template's whole request path (vanilla, or sdxl: adapter,
  compel, fresh scheduler, safety check, PNG file) against a bare StableDiffusionPipeline (or
  StableDiffusionXLPipeline, watermarking as its default does and as the template's does) call
  with the same weights, scheduler, steps, guidance and size: diffusers' default pipeline.
  Every call has a new prompt, so no encoding is reused. Both run in one child process,
  alternately, so a machine whose load drifts slows both alike; medians of
  --repeats after a warm-up (which is also where a compile happens).
- throughput: images per second with num_outputs=4 (ours) and num_images_per_prompt=4
  (diffusers), one seed per image on both sides.
- setup: the template's setup() against reading every weight file (both warm), in a child.
- boot: wall time from starting the real Cog server to READY; when the template compiles, once
  without and once with the compile cache that the first boot's warm-up produced
  (buildkit/compile_cache.py writes it).
JSON on stdout and in bench/results/infer-<shape>-<family>.json.
"""

from __future__ import annotations

import argparse
import itertools
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


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def alternate(sides: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each side's call, the sides taking turns; one warm-up call each."""
    for call in sides.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, call in sides.items():
            _sync()
            started = time.perf_counter()
            call()
            _sync()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def template_name(args) -> str:
    return "sdxl" if args.family == "sdxl" else "vanilla"


def template_runner(args):
    """The template's Cog adapter class, as its cog.yaml names it."""
    import importlib

    from templates.specs import TEMPLATES

    path, name = TEMPLATES[template_name(args)].cog_ref.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


def template_inputs(args, num_outputs: int) -> dict:
    safety = "disable_safety_checker" if args.family == "sdxl" else "disable_safety_check"
    return dict(
        prompt=PROMPT,
        negative_prompt=None,
        image=None,
        mask=None,
        width=args.size,
        height=args.size,
        num_outputs=num_outputs,
        num_inference_steps=args.steps,
        guidance_scale=7.5,
        prompt_strength=0.8,
        scheduler="DPMSolverMultistep",
        seed=1,
        **{safety: False},
    )


def _environment(args, weights: Path, template: Path) -> None:
    os.environ.update(
        WEIGHTS_DIR=str(weights), TEMPLATE_WEIGHTS_DIR=str(template), TEMPLATE=template_name(args)
    )


def diffusers_pipeline(args, weights: Path):
    import diffusers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    if args.family == "sdxl":
        pipeline = diffusers.StableDiffusionXLPipeline.from_pretrained(weights, dtype=dtype)
    else:
        pipeline = diffusers.StableDiffusionPipeline.from_pretrained(
            weights, safety_checker=None, dtype=dtype
        )
    pipeline = pipeline.to(device)
    scheduler = diffusers.DPMSolverMultistepScheduler
    pipeline.scheduler = scheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def latency(args, weights: Path, template: Path) -> dict:
    _environment(args, weights, template)
    runner = template_runner(args)()
    runner.setup()
    pipeline = diffusers_pipeline(args, weights)

    takes = itertools.count()  # a new prompt each call: neither side may reuse an encoding

    def prompt() -> str:
        return f"{PROMPT}, take {next(takes)}"

    def diffusers(count: int):
        generators = [torch.Generator().manual_seed(1 + i) for i in range(count)]
        return pipeline(
            prompt(),
            num_inference_steps=args.steps,
            guidance_scale=7.5,
            height=args.size,
            width=args.size,
            num_images_per_prompt=count,
            generator=generators,
        ).images

    def ours(count: int, **extra):
        inputs = {**template_inputs(args, count), "prompt": prompt(), **extra}
        return list(runner.generate(inputs))

    sides = {"diffusers": lambda: diffusers(1), "ours": lambda: ours(1)}
    # the safety checker is work the bare pipeline does not do: shown apart
    unchecked = {k: True for k in template_inputs(args, 1) if k.startswith("disable_safety")}
    sides["ours_without_safety_check"] = lambda: ours(1, **unchecked)
    single = alternate(sides, args.repeats)
    batch = alternate(
        {"diffusers": lambda: diffusers(4), "ours": lambda: ours(4)}, max(1, args.repeats // 2)
    )
    return {
        "optimizations": sorted(runner.engine.fast.chosen),
        "image_s": single,
        "num_outputs_4_images_per_s": {k: round(4 / v, 3) for k, v in batch.items()},
    }


def setup(args, weights: Path, template: Path) -> dict:
    _environment(args, weights, template)
    read_all(weights)  # warm the page cache for both measurements
    read = read_all(weights)
    runner = template_runner(args)()
    started = time.perf_counter()
    runner.setup()  # the first setup also imports diffusers' pipeline modules (and compiles)
    first = time.perf_counter() - started
    started = time.perf_counter()
    runner.setup()
    return {
        "first_setup_s": first,
        "setup_s": time.perf_counter() - started,
        "read_weights_s": read,
    }


def boot(args, weights: Path, template: Path, folder: Path) -> dict:
    """Seconds from starting the real server to READY; with the compile cache when one is made."""
    from buildkit.cog_client import CogServer
    from core.fast_path import COMPILE_CACHE, FastPath

    env = {"WEIGHTS_DIR": str(weights), "TEMPLATE_WEIGHTS_DIR": str(template)}
    env["COG_TEST_LOG_DIR"] = str(folder)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {}
    cache = template / COMPILE_CACHE
    runs = ["without_compile_cache", "with_compile_cache"]
    if not FastPath.from_env(device).compiles:
        runs = ["no_compile"]
    for run in runs:
        if run == "with_compile_cache":
            from buildkit.compile_cache import write_cache

            write_cache(template_name(args), weights, template, cache)
        # a fresh inductor cache: a cold machine, whatever earlier runs compiled here
        env["TORCHINDUCTOR_CACHE_DIR"] = str(folder / f"inductor-{run}")
        started = time.perf_counter()
        with CogServer(template_name(args), env=env, setup_timeout=1800):
            result[f"boot_to_ready_s_{run}"] = round(time.perf_counter() - started, 2)
    return result


def child(args, side: str, weights: Path, template: Path) -> dict:
    flags = ["--weights", str(weights), "--template", str(template), "--shape", args.shape]
    flags += ["--family", args.family]
    flags += ["--size", str(args.size), "--steps", str(args.steps), "--repeats", str(args.repeats)]
    flags += ["--threads", str(args.threads)]
    return workers.run("bench.infer", side, flags)


def make_weights(args, folder: Path) -> tuple[Path, Path]:
    from buildkit import real_shape, tiny
    from buildkit.tiny_templates import write_template_weights

    builder = tiny if args.shape == "tiny" else real_shape
    shape = "sd15" if args.shape != "tiny" else "tiny"  # the checker's shape is CLIP's anyway
    # the refiner is not benchmarked: the bare pipeline has none
    template = write_template_weights(
        template_name(args), folder / "template", shape=shape, refiner=False
    )
    return getattr(builder, f"write_{args.family}")(folder / "weights"), template


def report(args, sides: dict, boots: dict) -> dict:
    image = sides["latency"]["image_s"]
    throughput = sides["latency"]["num_outputs_4_images_per_s"]
    return {
        "benchmark": "infer",
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("worker", "weights", "template")
        },
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        **sides,
        "boot": boots,
        "ratio_image_latency": round(image["ours"] / image["diffusers"], 3),
        "ratio_image_latency_without_safety_check": round(
            image["ours_without_safety_check"] / image["diffusers"], 3
        ),
        "ratio_num_outputs_4_throughput": round(throughput["ours"] / throughput["diffusers"], 3),
        "ratio_setup_to_reading_weights": round(
            sides["setup"]["setup_s"] / sides["setup"]["read_weights_s"], 2
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape", choices=["tiny", "sd15", "sdxl"], default="tiny", help="sd15, sdxl: real shape"
    )
    parser.add_argument("--family", choices=["sd15", "sdxl"], default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-boot", action="store_true", help="skip the boot-to-READY runs")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument("--worker", choices=["latency", "setup"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--template", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.family = args.family or (args.shape if args.shape != "tiny" else "sd15")
    real = {"sd15": 512, "sdxl": 1024}[args.family]
    args.size = args.size or (64 if args.shape == "tiny" else real)
    if args.worker:
        if args.threads:  # on a shared CPU, one thread each gives steadier numbers
            torch.set_num_threads(args.threads)
        work = latency if args.worker == "latency" else setup
        workers.report(work(args, args.weights, args.template))
        return
    with tempfile.TemporaryDirectory() as folder:
        weights, template = make_weights(args, Path(folder))
        sides = {side: child(args, side, weights, template) for side in ("setup", "latency")}
        boots = {} if args.no_boot else boot(args, weights, template, Path(folder))
    result = report(args, sides, boots)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"infer-{args.shape}-{args.family}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
