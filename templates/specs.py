"""Every template as data: a name, its Cog adapter, and its control type (if any).

`script/build-template NAME` and `script/serve NAME` look templates up here; the image gets
`TEMPLATE=<name>` in its environment, and the adapter reads the spec back at `setup()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.controls import ControlType
from core.errors import UserError

ADAPTERS = "templates/predict.py"


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    cog_ref: str
    control: ControlType | None = None

    @property
    def description(self) -> str:
        if self.control is None:
            return "txt2img, img2img and inpainting"
        return f"ControlNet {self.control.value} (txt2img, img2img, inpainting)"


def _controlnet(control: ControlType) -> TemplateSpec:
    adapter = "Canny" if control is ControlType.CANNY else "ControlNet"
    return TemplateSpec(f"controlnet-{control.value}", f"{ADAPTERS}:{adapter}", control)


TEMPLATES: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in [TemplateSpec("vanilla", f"{ADAPTERS}:Vanilla")]
    + [_controlnet(control) for control in ControlType]
}


def current(default: str = "vanilla") -> TemplateSpec:
    """The spec this process serves, from $TEMPLATE (cog.yaml's environment in the image)."""
    name = os.environ.get("TEMPLATE", default)
    if name not in TEMPLATES:
        raise UserError(f"TEMPLATE={name!r} is not one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]
