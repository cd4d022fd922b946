"""Training methods: strategies over the one training loop, registered by name.

A new method is a new file with a builder `(cfg, components, side) -> TrainingMethod` (`side`:
the family's trainer side, trainer/families/), added here;
`MethodName` in trainer/config.py lists the names the `method` input accepts.
"""

from trainer.methods.base import Trainable, TrainingMethod
from trainer.methods.full import full
from trainer.methods.lora import lora
from trainer.methods.pivotal import pivotal
from trainer.methods.textual_inversion import textual_inversion

METHODS = {
    "full": full,
    "lora": lora,
    "textual_inversion": textual_inversion,
    "pivotal": pivotal,
}


def make_method(cfg, components: dict, side) -> TrainingMethod:
    return METHODS[cfg.method.value](cfg, components, side)


__all__ = ["METHODS", "Trainable", "TrainingMethod", "make_method"]
