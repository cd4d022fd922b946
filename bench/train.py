"""Training speed and memory: our trainer against the real peer, diffusers' example script.

    python -m bench.train --peer-script ~/diffusers/examples/dreambooth/train_dreambooth.py
    python -m bench.train --shape sd15 --precision bf16 --config all \
        --peer-script ~/diffusers/examples/dreambooth/train_dreambooth.py     # on a GPU
    python -m bench.train --method lora --config all \
        --peer-script ~/diffusers/examples/dreambooth/train_dreambooth_lora.py
    python -m bench.train --method textual_inversion --config all \
        --peer-script ~/diffusers/examples/textual_inversion/textual_inversion.py
    python -m bench.train --family sdxl --config all \
        --peer-script ~/diffusers/examples/dreambooth/train_dreambooth_lora_sdxl.py
    python -m bench.train --shape sdxl --resolution 1024 --precision bf16 --config all \
        --peer-script ~/diffusers/examples/dreambooth/train_dreambooth_lora_sdxl.py  # on a GPU

The peer is the user's own copy of the script, run unchanged by path (bench/peer.py) at the
same settings: same base, photos, prompt, resolution, batch size, learning rate, schedule,
precision, seed and step count. Without `--peer-script` only ours is measured.

Every configuration runs each side in its own child process, one after the other. Both are
timed the same way: PyTorch's global optimizer-step hook after a CUDA sync. Reported per side:
steady seconds/step (after `--warmup` steps), wall time, time to the first step (which holds
class-image generation under prior preservation), peak `max_memory_allocated`, device-level GPU
peak (NVML) and peak RSS; and ours/peer ratios. JSON on stdout and in
bench/results/train-<shape>-<family>-<method>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

from bench import workers
from bench.train_sides import CONFIGS, Setting, configs_for, peer_flags, run_ours

RESULTS = Path(__file__).resolve().parent / "results"


def steady_rate(stamps: list[float], warmup: int) -> float | None:
    """Seconds per step after the first `warmup` steps."""
    usable = stamps[warmup:] if len(stamps) > warmup + 1 else stamps
    if len(usable) < 2:
        return None
    return (usable[-1] - usable[0]) / (len(usable) - 1)


def summarise(raw: dict, warmup: int) -> dict:
    stamps = raw.pop("stamps")
    started = raw.pop("started", None)
    result = {"seconds_per_step": steady_rate(stamps, warmup), "steps_timed": len(stamps), **raw}
    if started is not None and stamps:
        result["seconds_to_first_step"] = round(stamps[0] - started, 3)
    return result


def ratios(ours: dict, peer: dict) -> dict:
    out = {}
    for key in ("seconds_per_step", "wall_seconds", "peak_cuda_mb", "peak_device_mb"):
        if ours.get(key) and peer.get(key):
            out[f"ratio_{key}"] = round(ours[key] / peer[key], 3)
    return out


def bench_setting(args, setting: Setting, base: Path, photos: Path, folder: Path) -> dict:
    shared = ["--base", str(base), "--photos", str(photos), *forwarded(args, setting)]
    ours = summarise(workers.run("bench.train", "ours", shared), args.warmup)
    entry = {"ours": ours}
    if args.peer_script:
        out = folder / f"peer-{setting.name}"
        command = [sys.executable, "-m", "bench.peer", str(args.peer_script), "--"]
        flags = peer_flags(args, setting, base, folder / "photos", out)
        peer = summarise(workers.run_command(command + flags), args.warmup)
        entry.update(peer=peer, **ratios(ours, peer))
    return entry


def forwarded(args, setting: Setting) -> list[str]:
    return [
        "--config",
        setting.name,
        "--steps",
        str(args.steps),
        "--resolution",
        str(args.resolution),
        "--precision",
        args.precision,
    ]


def make_inputs(shape: str, family: str, folder: Path) -> tuple[Path, Path]:
    """A base model and the photos, as a zip (ours) and a folder (the peer's)."""
    from buildkit import real_shape, tiny
    from buildkit.sample_photos import photo, write_photo_zip

    builder = tiny if shape == "tiny" else real_shape
    base = getattr(builder, f"write_{family}")(folder / "base")
    photos = write_photo_zip(folder / "photos.zip")
    (folder / "photos").mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        photo(name).save(folder / "photos" / f"{name}.png")
    return base, photos


def machine() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "device": "cuda" if cuda else "cpu",
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape", choices=["tiny", "sd15", "sdxl"], default="tiny", help="sd15, sdxl: real shape"
    )
    parser.add_argument("--family", choices=["sd15", "sdxl"], default=None)
    parser.add_argument(
        "--method", choices=["full", "lora", "textual_inversion", "pivotal"], default="full"
    )
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default=None)
    parser.add_argument("--peer-script", type=Path, help="diffusers' train_dreambooth.py")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--precision", choices=["auto", "no", "fp16", "bf16"], default="auto")
    parser.add_argument("--worker", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--photos", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.family = args.family or (args.shape if args.shape != "tiny" else "sd15")
    if args.shape != "tiny" and args.shape != args.family:
        parser.error(f"--shape {args.shape} is a {args.shape} model; --family says {args.family}")
    real = {"sd15": 512, "sdxl": 1024}[args.family]
    args.resolution = args.resolution or (64 if args.shape == "tiny" else real)
    if args.peer_script and not args.peer_script.is_file():
        parser.error(f"--peer-script {args.peer_script} is not a file")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.worker:
        return workers.report(run_ours(args, CONFIGS[args.config]))

    names = configs_for(args.method, args.family)
    names = names if args.config in (None, "all") else [args.config]
    if args.config is None:
        names = names[:1] if args.method != "full" or args.family != "sd15" else ["unet+te"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        base, photos = make_inputs(args.shape, args.family, folder)
        configs = {name: bench_setting(args, CONFIGS[name], base, photos, folder) for name in names}
    report = {
        "benchmark": "train",
        "peer": str(args.peer_script) if args.peer_script else None,
        "settings": {
            k: str(v) for k, v in vars(args).items() if k not in ("worker", "base", "photos")
        },
        "machine": machine(),
        "configs": configs,
    }
    RESULTS.mkdir(exist_ok=True)
    method = "pivotal" if args.family == "sdxl" else args.method
    (RESULTS / f"train-{args.shape}-{args.family}-{method}.json").write_text(
        json.dumps(report, indent=2) + "\n"
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
