"""The wheels a bare GPU machine lacks, for the GPU test lane (`make gpu-test`).

The GPU machines this project is lent (../shared/reference/gpu.md) run Python 3.12 with torch,
accelerate, transformers, peft, safetensors, timm, opencv, scikit-image, pytest and nvidia-ml-py,
but without diffusers, compel, controlnet-aux, cog/coglet or bitsandbytes, and with no network.

    python -m buildkit.gpu_wheels fetch gpu-wheels/              # here, where PyPI is reachable
    python3 -m buildkit.gpu_wheels install gpu-wheels/ /tmp/gpu-site    # there, offline
    PYTHONPATH=/tmp/gpu-site:. python3 -m pytest -m gpu tests/gpu

Only the standard library is used here, so `install` runs before anything else is importable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# What the GPU machine lacks; versions come from requirements/cog.txt where it pins them.
NEEDED = (
    "diffusers",
    "transformers",
    "compel",
    "controlnet-aux",
    "bitsandbytes",
    "cog==0.23.1",
    "coglet==0.23.1",
    "structlog",
    "importlib_metadata",
)
TARGET = ("--python-version", "3.12", "--platform", "manylinux_2_17_x86_64")


def pinned(name: str) -> str:
    if "==" in name:
        return name
    for line in (REPO / "requirements" / "cog.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name.lower():
            return line.strip()
    return name


def fetch(folder: Path) -> list[str]:
    requirements = [pinned(name) for name in NEEDED]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*command, *TARGET, "-d", str(folder), *requirements], check=True)
    return requirements


def install(folder: Path, site: Path) -> None:
    wheels = sorted(str(p) for p in Path(folder).glob("*.whl"))
    if not wheels:
        raise SystemExit(f"no wheels in {folder}: run `python -m buildkit.gpu_wheels fetch` first")
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q"]
    subprocess.run([*command, "--target", str(site), *wheels], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch").add_argument("folder", type=Path)
    install_parser = commands.add_parser("install")
    install_parser.add_argument("folder", type=Path)
    install_parser.add_argument("site", type=Path)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print("\n".join(fetch(args.folder)))
    else:
        install(args.folder, args.site)


if __name__ == "__main__":
    main()
