"""The trainer from the command line, for `accelerate launch` on several GPUs (or none).

    accelerate launch --num_processes 2 -m trainer.cli --instance_data photos.zip \
        --instance_prompt "a photo of sks dog" --class_prompt "a photo of a dog"

Flags are the Cog inputs, generated from TrainConfig, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import logging
import types
import typing
from dataclasses import MISSING, fields
from enum import Enum
from pathlib import Path

from trainer.config import TrainConfig


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _converter(annotation):
    hints = typing.get_type_hints(TrainConfig)
    kind = hints[annotation]
    if isinstance(kind, types.UnionType):  # X | None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool:
        return _parse_bool, None
    if isinstance(kind, type) and issubclass(kind, Enum):
        return str, [member.value for member in kind]
    return (Path if kind is Path else kind), None


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description="DreamBooth training (see README).")
    for field in fields(TrainConfig):
        convert, choices = _converter(field.name)
        required = field.default is MISSING
        default = None if required else field.default
        if isinstance(default, Enum):
            default = default.value
        result.add_argument(
            f"--{field.name}", type=convert, choices=choices, required=required, default=default
        )
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from trainer.job import train

    cfg = TrainConfig(**vars(parser().parse_args(argv)))
    result = train(cfg)
    if result.output.is_file():  # the main process writes it
        print(f"output: {result.output} ({result.steps} steps)")


if __name__ == "__main__":
    main()
