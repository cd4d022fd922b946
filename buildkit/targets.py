"""What can be built and served from this repository: the trainer and every template.

Every target is built from the repository root (Cog only sees files under the folder of the
`cog.yaml` being built), so they all share `core/`. A target is the `run:`/`train:` references
plus the environment `cog build` bakes into the image; `cog.yaml` is rendered from one base.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAINER = "trainer"
TRAINER_SDXL = "trainer-sdxl"


@dataclass(frozen=True)
class Target:
    name: str
    run: str
    train: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def cog_yaml(self) -> str:
        """cog.yaml for this target: the shared build section plus its refs and environment."""
        lines = [
            f"# {self.description or self.name}",
            "# Rendered by buildkit/targets.py; edit there, not here.",
            "build:",
            "  gpu: true",
            '  cuda: "12.8"',
            '  python_version: "3.11"',
            "  python_requirements: requirements/cog.txt",
            f'run: "{self.run}"',
        ]
        if self.train:
            lines.append(f'train: "{self.train}"')
        if self.environment:
            lines.append("environment:")
            lines += [f'  - "{k}={v}"' for k, v in self.environment.items()]
        return "\n".join(lines) + "\n"


def from_cog_yaml(path: Path) -> Target:
    """The target a (rendered) cog.yaml describes, as `cog build` would read it."""
    import yaml

    config = yaml.safe_load(Path(path).read_text())
    ref = config.get("run") or config.get("predict")
    environment = dict(item.split("=", 1) for item in config.get("environment", []))
    trainer = TRAINER_SDXL if "sdxl" in (ref or "") else TRAINER
    return Target(
        name=environment.get("TEMPLATE", trainer),
        run=ref,
        train=config.get("train"),
        environment=environment,
    )


def trainer_target() -> Target:
    return Target(
        name=TRAINER,
        run="trainer/predict.py:Predictor",
        train="trainer/predict.py:train",
        environment={"BASE_MODEL_DIR": "/src/base-weights"},
        description="DreamBooth trainer for Stable Diffusion: photos in, output.zip out",
    )


def trainer_sdxl_target() -> Target:
    return Target(
        name=TRAINER_SDXL,
        run="trainer/sdxl_predict.py:Predictor",
        train="trainer/sdxl_predict.py:train",
        environment={
            "BASE_MODEL_DIR": "/src/base-weights",
            "PREPROCESS_WEIGHTS_DIR": "/src/preprocess-weights",
        },
        description="SDXL trainer (cog-sdxl's inputs): photos in, trained_model.tar out",
    )


TRAINERS = {TRAINER: trainer_target, TRAINER_SDXL: trainer_sdxl_target}


# The SDXL trainer's cog.yaml, checked in beside the root one (the SD1.5 trainer's): Cog builds
# from the repository root, so select it with `cp cog-trainer-sdxl.yaml cog.yaml` (as
# replicate/cog-flux's script/select.sh does) or build the context it describes.
SDXL_COG_YAML = REPO_ROOT / "cog-trainer-sdxl.yaml"


def all_targets() -> dict[str, Target]:
    from templates.specs import TEMPLATES

    targets = {name: make() for name, make in TRAINERS.items()}
    for spec in TEMPLATES.values():
        targets[spec.name] = Target(
            name=spec.name,
            run=spec.cog_ref,
            environment={
                "TEMPLATE": spec.name,
                "WEIGHTS_DIR": "/src/weights",
                "TEMPLATE_WEIGHTS_DIR": "/src/template-weights",
                "BASE_WEIGHTS_DIR": "/src/base-weights",  # the base of an adapter output
            },
            description=f"{spec.name} template: weight-less until /src/weights is copied in",
        )
    return targets


def get(name: str) -> Target:
    if name in TRAINERS:  # a trainer image carries no template code paths
        return TRAINERS[name]()
    targets = all_targets()
    if name not in targets:
        raise SystemExit(f"unknown target {name!r}; choose one of: {', '.join(targets)}")
    return targets[name]
