"""Write a complete Cog build context for one template; print the weights build step.

    script/build-template NAME OUT [--weights DIR] [--base-weights DIR] [--template-weights DIR]
                               [--compile-cache] [--push IMAGE]
    script/build-template --dockerfile NAME IMAGE

The context holds a cog.yaml selecting NAME, the shared code (core/, templates/), the pinned
requirements, the template's own weights (safety checker, ControlNet, annotator: from
`script/download-weights template NAME`) and `.cog/openapi_schema.json`; with --weights, the SD
weights at weights/ too, and with --base-weights the base an adapter output in weights/ loads on
top of (base-weights/, /src/base-weights in the image). `--compile-cache` (on a GPU of the kind
the template will run on) compiles the template's fast path once and ships the artefacts in
template-weights/compile-cache/, so its cold boots load them instead of compiling
(buildkit/compile_cache.py). `--dockerfile` prints the DreamBooth API's build step: FROM the
template image, COPY weights /src/weights. With the cog CLI and Docker present, --push builds
and pushes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from buildkit import schema, targets

CODE = ("core", "templates")
FILES = ("requirements/cog.txt",)
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def dockerfile(image: str) -> str:
    return f"FROM {image}\nCOPY weights /src/weights\n"


def _copy_weights(source: Path, destination: Path, what: str, hint: str) -> None:
    if not source.is_dir() or not any(source.iterdir()):
        raise SystemExit(f"build-template: {what} not found at {source}; {hint}")
    shutil.copytree(source, destination, ignore=IGNORE)


def build(
    name: str,
    out: Path,
    weights: Path | None,
    template_weights: Path,
    compile_cache: bool = False,
    base_weights: Path | None = None,
) -> Path:
    target = targets.get(name)
    if name in targets.TRAINERS:
        raise SystemExit("build-template builds templates; the trainer's cog.yaml is the root one")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"build-template: {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    for folder in CODE:
        shutil.copytree(targets.REPO_ROOT / folder, out / folder, ignore=IGNORE)
    for file in FILES:
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(targets.REPO_ROOT / file, out / file)
    (out / "cog.yaml").write_text(target.cog_yaml())
    (out / ".dockerignore").write_text("**/__pycache__\n.cog/\n")
    _copy_weights(
        template_weights,
        out / "template-weights",
        f"{name}'s own weights",
        f"run `script/download-weights template {name}` (or script/make-tiny-weights "
        f"--template {name} DIR for offline tests) and pass --template-weights",
    )
    if weights is not None:
        _copy_weights(weights, out / "weights", "SD weights", "pass the unzipped output.zip")
    if base_weights is not None:
        _copy_weights(
            base_weights, out / "base-weights", "the base", "pass the base's diffusers folder"
        )
    if compile_cache:
        _write_compile_cache(name, weights, out / "template-weights")
    schema.write(out, target.run, target.train)
    return out


def _write_compile_cache(name: str, weights: Path | None, template_weights: Path) -> None:
    import tempfile

    from buildkit.compile_cache import write_cache
    from buildkit.real_shape import write_sd15
    from core.fast_path import COMPILE_CACHE

    with tempfile.TemporaryDirectory() as folder:
        weights = weights or write_sd15(Path(folder) / "weights")  # shapes are what compile
        write_cache(name, weights, template_weights, template_weights / COMPILE_CACHE)


def push(out: Path, image: str) -> None:
    if shutil.which("cog") is None:
        raise SystemExit(
            f"build-template: the cog CLI is not installed; {out} is ready for "
            f"`cd {out} && cog build -t {image} && cog push {image}`"
        )
    subprocess.run(["cog", "build", "-t", image], cwd=out, check=True)
    subprocess.run(["cog", "push", image], cwd=out, check=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--dockerfile":
        if len(argv) != 3:
            raise SystemExit("usage: build-template --dockerfile NAME IMAGE")
        targets.get(argv[1])
        print(dockerfile(argv[2]), end="")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(set(targets.all_targets()) - set(targets.TRAINERS)))
    parser.add_argument("out", type=Path)
    parser.add_argument("--weights", type=Path, help="SD weights (the unzipped output.zip)")
    parser.add_argument(
        "--base-weights", type=Path, help="the base of an adapter output in --weights"
    )
    parser.add_argument("--template-weights", type=Path, default=Path("template-weights"))
    parser.add_argument(
        "--compile-cache", action="store_true", help="ship torch.compile artefacts (needs a GPU)"
    )
    parser.add_argument("--push", metavar="IMAGE", help="cog build and push to IMAGE")
    args = parser.parse_args(argv)
    out = build(
        args.name,
        args.out,
        args.weights,
        args.template_weights,
        args.compile_cache,
        args.base_weights,
    )
    print(f"wrote the {args.name} build context to {out}")
    if args.push:
        push(out, args.push)


if __name__ == "__main__":
    main()
