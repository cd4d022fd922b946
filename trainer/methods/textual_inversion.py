"""Textual inversion: only new token embeddings train; the model itself is unchanged."""

from __future__ import annotations

from core.manifest import Method
from trainer.methods.base import TrainingMethod
from trainer.methods.tokens import NewTokens


def new_tokens(cfg, side) -> NewTokens:
    initializer = cfg.initializer_token or class_word(cfg.class_prompt)
    return NewTokens(
        cfg.new_token_word(), cfg.num_new_tokens, initializer, cfg.ti_lr, cfg.seed, side.pairs()
    )


def class_word(class_prompt: str | None) -> str | None:
    """The class noun: the last word of the class prompt ("a photo of a dog" -> "dog")."""
    words = [w.strip(".,;:!?()") for w in (class_prompt or "").split()]
    words = [w for w in words if w.isalpha()]
    return words[-1] if words else None


def textual_inversion(cfg, components: dict, side) -> TrainingMethod:
    return TrainingMethod(
        "textual_inversion", Method.TEXTUAL_INVERSION, components, [new_tokens(cfg, side)], side
    )
