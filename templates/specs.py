"""Every template as data: a name, its Cog adapter, its family, and its control type (if any).

`script/build-template NAME` and `script/serve NAME` look templates up here; the image gets
`TEMPLATE=<name>` in its environment, and the adapter reads the spec back at `setup()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from core import families
from core.controls import ControlType
from core.errors import UserError
from core.manifest import Family
from core.requests import SIZE, SIZE_SDXL, Bound

ADAPTERS = "templates/predict.py"
SDXL_ADAPTERS = "templates/sdxl_predict.py"


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    cog_ref: str
    control: ControlType | None = None
    family: Family = Family.SD15  # the weights it loads (read from them, checked against this)
    control_inputs: tuple[str, ...] = ()  # inputs the annotator takes (Canny's thresholds)
    default_prompt: str | None = None  # when the weights record no instance prompt
    size: Bound = SIZE  # width and height, in pixels

    @property
    def description(self) -> str:
        label = families.of(self.family).label
        if self.control is None:
            return f"{label} txt2img, img2img and inpainting"
        return f"{label} ControlNet {self.control.value} (txt2img, img2img, inpainting)"


def _controlnet(control: ControlType) -> TemplateSpec:
    canny = control is ControlType.CANNY
    return TemplateSpec(
        f"controlnet-{control.value}",
        f"{ADAPTERS}:{'Canny' if canny else 'ControlNet'}",
        control,
        control_inputs=("low_threshold", "high_threshold") if canny else (),
    )


def _sdxl(control: ControlType | None = None) -> TemplateSpec:
    """The SDXL template, or an SDXL ControlNet template (the controls SDXL has checkpoints
    for: core/families.py): the same engine, cog-sdxl's inputs."""
    canny = control is ControlType.CANNY
    adapter = "SDXL" if control is None else ("SDXLCanny" if canny else "SDXLControlNet")
    return TemplateSpec(
        "sdxl" if control is None else f"sdxl-controlnet-{control.value}",
        f"{SDXL_ADAPTERS}:{adapter}",
        control,
        family=Family.SDXL,
        control_inputs=("low_threshold", "high_threshold") if canny else (),
        default_prompt="An astronaut riding a rainbow unicorn",  # cog-sdxl's
        size=SIZE_SDXL,
    )


TEMPLATES: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in [TemplateSpec("vanilla", f"{ADAPTERS}:Vanilla")]
    + [_controlnet(control) for control in ControlType]
    + [_sdxl()]
    + [_sdxl(ControlType(name)) for name in families.SDXL.controlnets]
}


def current(default: str = "vanilla") -> TemplateSpec:
    """The spec this process serves, from $TEMPLATE (cog.yaml's environment in the image)."""
    name = os.environ.get("TEMPLATE", default)
    if name not in TEMPLATES:
        raise UserError(f"TEMPLATE={name!r} is not one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]
