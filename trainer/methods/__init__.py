"""Training methods: strategies over the one training loop."""

from trainer.methods.base import TrainingMethod
from trainer.methods.dreambooth import DreamBooth

__all__ = ["DreamBooth", "TrainingMethod"]
