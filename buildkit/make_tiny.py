"""Write tiny random-weight models, offline, in seconds.

script/make-tiny-weights DIR                  # an SD1.5 pipeline (the base-weights/ layout)
script/make-tiny-weights DIR --seed 3         # another random draw of the same shapes
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from buildkit import tiny


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--family", choices=["sd15"], default="sd15")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", help="write this template's own weights instead")
    args = parser.parse_args(argv)
    start = time.monotonic()
    if args.template:
        from buildkit.tiny_templates import write_template_weights

        write_template_weights(args.template, args.directory)
        what = f"{args.template} template"
    else:
        tiny.write_sd15(args.directory, seed=args.seed)
        what = args.family
    seconds = time.monotonic() - start
    print(f"wrote tiny {what} weights to {args.directory} in {seconds:.1f}s")


if __name__ == "__main__":
    main()
