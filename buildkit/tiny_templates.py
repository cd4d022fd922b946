"""A template's own weights (template-weights/ layout), tiny and random, offline.

safety-checker/   the real checker class, tiny; flags nothing (or, for tests, everything)
controlnet/       a tiny ControlNet whose control image really matters (ControlNet templates)
annotator/        random-weight annotator files under their real names (buildkit/tiny_annotators.py)
"""

from __future__ import annotations

from pathlib import Path

from buildkit.tiny import write_controlnet, write_safety_checker
from buildkit.tiny_annotators import write_annotator
from templates.specs import TEMPLATES


def write_template_weights(name: str, directory: Path, flag_everything: bool = False) -> Path:
    spec = TEMPLATES[name]
    directory = Path(directory)
    write_safety_checker(directory / "safety-checker", flag_everything=flag_everything)
    if spec.control is not None:
        write_controlnet(directory / "controlnet")
        write_annotator(spec.control, directory / "annotator")
    return directory
