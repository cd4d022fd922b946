"""The sampler registry: one name -> one way to build it, for the input's choices and for use.

Each request gets a fresh scheduler built from the weights' own scheduler config, so a request's
choice cannot leak into the next one. Names are dream-templates' and cog-sdxl's (KarrasDPM is
DPM-Solver++ with Karras sigmas).
"""

from __future__ import annotations

from collections.abc import Callable

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from core.errors import UserError

SCHEDULERS: dict[str, Callable] = {
    "DDIM": DDIMScheduler.from_config,
    "DPMSolverMultistep": DPMSolverMultistepScheduler.from_config,
    "HeunDiscrete": HeunDiscreteScheduler.from_config,
    "K_EULER_ANCESTRAL": EulerAncestralDiscreteScheduler.from_config,
    "K_EULER": EulerDiscreteScheduler.from_config,
    "KLMS": LMSDiscreteScheduler.from_config,
    "PNDM": PNDMScheduler.from_config,
    "UniPCMultistep": UniPCMultistepScheduler.from_config,
    "KarrasDPM": lambda config: DPMSolverMultistepScheduler.from_config(
        config, use_karras_sigmas=True
    ),
}


def make_scheduler(name: str, config):
    """A new scheduler of kind `name`, configured like the weights' own scheduler."""
    if name not in SCHEDULERS:
        raise UserError(f"scheduler={name!r} is not one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name](config)
