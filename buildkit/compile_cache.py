"""Make a template's torch.compile artefacts at build time, so its cold boots do not recompile.

    python -m buildkit.compile_cache NAME OUT_FILE [--weights DIR] [--template-weights DIR]

Runs the template's own setup() in a fresh process, with a fresh inductor cache and its default
fast path (which compiles and warms up on a GPU), then saves every artefact compiled
(core/fast_path.py: save_compile_cache). Compiled code depends on shapes and dtypes, not on
weight values, so without --weights a real-shape random SD1.5 (buildkit/real_shape.py) stands in
for the trained weights. The cache is keyed to the GPU, torch and Triton that made it: build
it on the GPU kind and image the template will run on (`script/build-template --compile-cache`
puts it in the context's template-weights/compile-cache/). A mismatched cache is simply a miss.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def write_cache(name: str, weights: Path, template_weights: Path, out: Path) -> Path:
    """Run the warm-up in a child process (fresh compile state) and return the written cache."""
    command = [sys.executable, "-m", "buildkit.compile_cache", name, str(out)]
    command += ["--weights", str(weights), "--template-weights", str(template_weights)]
    with tempfile.TemporaryDirectory() as inductor:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": inductor, "COMPILE_CACHE_CHILD": "1"}
        subprocess.run(command, check=True, env=env)
    return Path(out)


def _warm_up_and_save(name: str, weights: Path, template_weights: Path, out: Path) -> None:
    from core.fast_path import save_compile_cache
    from templates.specs import TEMPLATES

    os.environ.update(
        TEMPLATE=name, WEIGHTS_DIR=str(weights), TEMPLATE_WEIGHTS_DIR=str(template_weights)
    )
    path, class_name = TEMPLATES[name].cog_ref.split(":")
    module = __import__(path.removesuffix(".py").replace("/", "."), fromlist=[class_name])
    runner = getattr(module, class_name)()
    runner.setup()
    if runner.unusable is not None:
        raise SystemExit(f"compile-cache: {runner.unusable}")
    if not runner.engine.fast.compiles:
        raise SystemExit("compile-cache: this device's fast path does not compile (no GPU?)")
    saved = save_compile_cache(out)
    if saved is None:
        raise SystemExit("compile-cache: nothing was compiled")
    print(f"wrote {saved} ({saved.stat().st_size:,} bytes)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a template name, e.g. vanilla or controlnet-canny")
    parser.add_argument("out", type=Path, help="the cache file to write")
    parser.add_argument("--weights", type=Path, help="SD weights (default: real-shape, random)")
    parser.add_argument("--template-weights", type=Path, required=True)
    args = parser.parse_args(argv)
    if os.environ.get("COMPILE_CACHE_CHILD"):
        _warm_up_and_save(args.name, args.weights, args.template_weights, args.out)
        return
    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights
        if weights is None:
            from buildkit.real_shape import write_sd15

            weights = write_sd15(Path(folder) / "weights")
        write_cache(args.name, weights, args.template_weights, args.out)


if __name__ == "__main__":
    main()
