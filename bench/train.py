"""Seconds per step and peak memory: our trainer vs a bare diffusers + accelerate loop.

    python -m bench.train                                 # tiny model, CPU (what CI machines have)
    python -m bench.train --shape sd15 --resolution 512 --precision fp16 --use-8bit-adam \
        --gradient-checkpointing                          # real-shape SD1.5, random weights (GPU)

Each side runs in its own child process (same process tree, one after the other), so peak
memory is each one's own. The baseline is the loop of diffusers' examples/dreambooth/
train_dreambooth.py reduced to the same settings: it encodes every batch with the VAE, where
ours encodes each photo once. Steady-state seconds/step skip the first `--warmup` steps.
Output: JSON on stdout and in bench/results/train-<shape>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

from bench import workers

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT, CLASS_PROMPT = "a photo of sks cat", "a photo of a cat"


def peak_memory_mb() -> dict:
    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        peak["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def steady_rate(stamps: list[float], warmup: int) -> float:
    """Seconds per step after the first `warmup` steps."""
    usable = stamps[warmup:] if len(stamps) > warmup + 1 else stamps
    return (usable[-1] - usable[0]) / max(1, len(usable) - 1)


def run_ours(args, base: Path, photos: Path, work: Path) -> dict:
    import os

    os.environ.update(BASE_MODEL_DIR=str(base), TRAINER_WORK_DIR=str(work))
    from trainer import job
    from trainer.config import TrainConfig

    stamps: list[float] = []

    def timed(event) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    cfg = TrainConfig(
        instance_prompt=PROMPT,
        class_prompt=CLASS_PROMPT,
        instance_data=photos,
        with_prior_preservation=False,
        resolution=args.resolution,
        max_train_steps=args.steps,
        learning_rate=5e-6,
        mixed_precision=args.precision,
        use_8bit_adam=args.use_8bit_adam,
        gradient_checkpointing=args.gradient_checkpointing,
        checkpointing_steps=0,
        train_text_encoder=True,
        seed=0,
    )
    result = job.train(cfg, callbacks=[timed])
    return {
        "seconds_per_step": steady_rate(stamps, args.warmup),
        "final_loss": result.summary["final_loss"],
    }


def run_baseline(args, base: Path, photos: Path) -> dict:
    from bench.baseline_loop import train_baseline

    stamps, loss = train_baseline(base, photos, PROMPT, args)
    return {"seconds_per_step": steady_rate(stamps, args.warmup), "final_loss": loss}


def worker(args) -> None:
    base, photos = Path(args.base), Path(args.photos)
    with tempfile.TemporaryDirectory() as work:
        if args.worker == "ours":
            result = run_ours(args, base, photos, Path(work))
        else:
            result = run_baseline(args, base, photos)
    result.update(peak_memory_mb())
    workers.report(result)


def child(args, side: str, base: Path, photos: Path) -> dict:
    return workers.run(
        "bench.train", side, ["--base", str(base), "--photos", str(photos), *forwarded(args)]
    )


def forwarded(args) -> list[str]:
    flags = [
        "--shape",
        args.shape,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--resolution",
        str(args.resolution),
        "--precision",
        args.precision,
    ]
    if args.use_8bit_adam:
        flags.append("--use-8bit-adam")
    if args.gradient_checkpointing:
        flags.append("--gradient-checkpointing")
    return flags


def make_inputs(args, folder: Path) -> tuple[Path, Path]:
    from buildkit.sample_photos import write_photo_zip

    if args.shape == "tiny":
        from buildkit.tiny import write_sd15
    else:
        from buildkit.real_shape import write_sd15
    base = write_sd15(folder / "base")
    return base, write_photo_zip(folder / "photos.zip")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--precision", choices=["auto", "no", "fp16", "bf16"], default="auto")
    parser.add_argument("--use-8bit-adam", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--photos", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.resolution = args.resolution or (64 if args.shape == "tiny" else 512)
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as folder:
        base, photos = make_inputs(args, Path(folder))
        sides = {side: child(args, side, base, photos) for side in ("baseline", "ours")}
    report = {
        "benchmark": "train",
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "base", "photos")},
        "machine": {
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "baseline": sides["baseline"],
        "ours": sides["ours"],
        "ratio_seconds_per_step": round(
            sides["ours"]["seconds_per_step"] / sides["baseline"]["seconds_per_step"], 3
        ),
        "ratio_peak_rss": round(sides["ours"]["peak_rss_mb"] / sides["baseline"]["peak_rss_mb"], 3),
    }
    if "peak_cuda_mb" in sides["ours"]:
        report["ratio_peak_cuda"] = round(
            sides["ours"]["peak_cuda_mb"] / sides["baseline"]["peak_cuda_mb"], 3
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"train-{args.shape}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
