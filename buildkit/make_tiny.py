"""Write tiny random-weight models, offline, in seconds.

script/make-tiny-weights DIR                          # an SD1.5 pipeline (the base-weights/ layout)
script/make-tiny-weights DIR --family sdxl            # an SDXL base pipeline
script/make-tiny-weights DIR --family sdxl --refiner REFINER_DIR   # and its refiner
script/make-tiny-weights DIR --seed 3                 # another random draw of the same shapes
script/make-tiny-weights DIR --preprocess             # BLIP, CLIPSeg, OWL-ViT, Swin2SR (tiny)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from buildkit import tiny

WRITERS = {"sd15": tiny.write_sd15, "sdxl": tiny.write_sdxl}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--family", choices=sorted(WRITERS), default="sd15")
    parser.add_argument("--refiner", type=Path, help="also write an SDXL refiner to this folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", help="write this template's own weights instead")
    parser.add_argument(
        "--preprocess", action="store_true", help="write the SDXL trainer's preprocessing models"
    )
    args = parser.parse_args(argv)
    if args.refiner and args.family != "sdxl":
        parser.error("--refiner needs --family sdxl")
    start = time.monotonic()
    if args.template:
        from buildkit.tiny_templates import write_template_weights

        write_template_weights(args.template, args.directory)
        what = f"{args.template} template"
    elif args.preprocess:
        from buildkit.tiny_preprocess import write_preprocess_models

        write_preprocess_models(args.directory, seed=args.seed)
        what = "preprocessing"
    else:
        WRITERS[args.family](args.directory, seed=args.seed)
        what = args.family
        if args.refiner:
            tiny.write_sdxl_refiner(args.refiner, seed=args.seed)
            what += f" (and its refiner in {args.refiner})"
    seconds = time.monotonic() - start
    print(f"wrote tiny {what} weights to {args.directory} in {seconds:.1f}s")


if __name__ == "__main__":
    main()
