"""A training method is a strategy over the one loop: what trains, how it is saved.

A method is made of parts (`Trainable`): the full UNet and text encoder, LoRA layers, new token
embeddings. Each part says which modules it trains, its parameter groups and learning rates,
its checkpointed state (only what trains), what happens around each step, and what it exports.
The loop (trainer/loop.py) and the job (trainer/job.py) only talk to `TrainingMethod`, so a new
method is a new file that combines parts, registered by name (trainer/methods/__init__.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn

from core.manifest import Method, Part
from trainer.families import Conditioning, FamilySide

TEXT_ENCODER = "text_encoder"


class Trainable(ABC):
    """One kind of trainable state."""

    key: str  # names its entries in a checkpoint, unique within a method

    def prepare(self, components: dict, device: torch.device, dtype: torch.dtype) -> None:  # noqa: B027 (an optional hook)
        """Make the parameters it trains trainable (and add layers or tokens first)."""

    @abstractmethod
    def modules(self) -> tuple[str, ...]:
        """The components it trains, by name (what accelerate prepares)."""

    @abstractmethod
    def parameter_groups(self, components: dict, lr_scale: float) -> list[dict]:
        """`{"params": [...], "lr": ..., "input": <the input that sets lr>}` groups."""

    @abstractmethod
    def state_dict(self, components: dict) -> dict[str, torch.Tensor]:
        """What it trains, and only that: the checkpoint of this part."""

    @abstractmethod
    def load_state_dict(self, components: dict, state: dict[str, torch.Tensor]) -> None: ...

    @abstractmethod
    def trained_parts(self) -> tuple[Part, ...]: ...

    @abstractmethod
    def export(self, pipeline, directory: Path, dtype: torch.dtype) -> dict:
        """Write its part of output.zip; returns what the manifest's `adapter` records."""

    def at_step(self, components: dict, step: int) -> None:  # noqa: B027 (an optional hook)
        """Before optimizer step `step` (0-based): phases such as the pivot."""

    def after_step(self, components: dict) -> None:  # noqa: B027 (an optional hook)
        """After each optimizer step: e.g. restore what must not change."""

    def rewrite(self, prompt: str) -> str:
        """A prompt as the trained model reads it (a word replaced by new tokens)."""
        return prompt


class TrainingMethod:
    """The parts of one method, seen as one strategy by the loop and the job."""

    def __init__(
        self,
        name: str,
        method: Method,
        components: dict,
        parts: list[Trainable],
        side: FamilySide,
    ):
        self.name, self.method, self.parts, self.side = name, method, parts, side
        self.components = dict(components)  # the plain modules: what parts read and write
        self.wrapped: dict[str, nn.Module] = {}  # accelerate's, for the forward pass
        for module in side.spec.model_parts:
            self.components[module].requires_grad_(False)
        self._frozen_cache: dict[tuple, Conditioning] = {}

    @property
    def text_encoders(self) -> tuple[str, ...]:
        return self.side.text_encoders

    # --- set-up -------------------------------------------------------------------------

    def prepare(self, device: torch.device, dtype: torch.dtype) -> None:
        """Place the modules on `device`: what trains in fp32, everything frozen in `dtype`.

        Frozen weights are halved under mixed precision (memory); trained ones never are,
        since a round trip through a half dtype would lose precision of the base weights.
        """
        for part in self.parts:
            part.prepare(self.components, device, dtype)
        for name in ("unet", *self.text_encoders):
            module = self.components[name].to(device)
            for parameter in module.parameters():
                wanted = torch.float32 if parameter.requires_grad else dtype
                parameter.data = parameter.data.to(wanted)
        for module in self.trainable().values():
            module.train()

    def plan(self, total_steps: int) -> None:
        """Called once the number of steps is known (pivotal tuning places its pivot)."""

    def trainable(self) -> dict[str, nn.Module]:
        names = dict.fromkeys(n for part in self.parts for n in part.modules())
        return {name: self.components[name] for name in names}

    def use(self, prepared: dict[str, nn.Module]) -> None:
        """Adopt the accelerate-wrapped modules for the forward pass."""
        self.wrapped.update(prepared)

    def forward_module(self, name: str) -> nn.Module:
        return self.wrapped.get(name, self.components[name])

    def parameter_groups(self, lr_scale: float) -> list[dict]:
        return [g for part in self.parts for g in part.parameter_groups(self.components, lr_scale)]

    def parameters(self) -> list[nn.Parameter]:
        return [p for group in self.parameter_groups(1.0) for p in group["params"]]

    def learning_rates(self, lr_scale: float) -> dict[str, float]:
        """The inputs that set the learning rates, with their effective values."""
        return {g["input"]: g["lr"] for g in self.parameter_groups(lr_scale)}

    # --- the step -----------------------------------------------------------------------

    @property
    def unet(self) -> nn.Module:
        return self.forward_module("unet")

    def at_step(self, step: int) -> None:
        for part in self.parts:
            part.at_step(self.components, step)

    def after_step(self) -> None:
        for part in self.parts:
            part.after_step(self.components)

    def rewrite(self, prompt: str) -> str:
        for part in self.parts:
            prompt = part.rewrite(prompt)
        return prompt

    def text_encoder_trains(self, name: str | None = None) -> bool:
        """Whether any text encoder (or the one named) has parameters that train."""
        names = (name,) if name else self.text_encoders
        return any(p.requires_grad for n in names for p in self.components[n].parameters())

    def conditioning(self, input_ids: tuple[torch.Tensor, ...]) -> Conditioning:
        """The UNet's conditioning for a batch of token ids (one tensor per tokenizer, on the
        host)."""
        encoders = [self.forward_module(name) for name in self.text_encoders]
        device = next(self.unet.parameters()).device
        if self.text_encoder_trains():
            self._frozen_cache.clear()  # its values move while it trains
            return self.side.encode(encoders, tuple(ids.to(device) for ids in input_ids))
        # Frozen: each distinct caption is encoded once, keyed by its ids on the host (no
        # device sync). Padding to the batch's longest caption only appends end-of-text
        # tokens, which the causal encoder never attends back from.
        rows = []
        for row in zip(*(ids.tolist() for ids in input_ids), strict=True):
            key = tuple(tuple(ids) for ids in row)
            if key not in self._frozen_cache:
                single = tuple(torch.tensor([ids], device=device) for ids in row)
                with torch.no_grad():
                    self._frozen_cache[key] = self.side.encode(encoders, single).row(0)
            rows.append(self._frozen_cache[key])
        return Conditioning.stack(rows)

    def predict(self, noisy, timesteps, conditioning: Conditioning, time_ids) -> torch.Tensor:
        return self.side.predict(self.unet, noisy, timesteps, conditioning, time_ids)

    # --- state and output ---------------------------------------------------------------

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {part.key: part.state_dict(self.components) for part in self.parts}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for part in self.parts:
            part.load_state_dict(self.components, state[part.key])

    def trained_parts(self) -> tuple[Part, ...]:
        return tuple(dict.fromkeys(p for part in self.parts for p in part.trained_parts()))

    def export(self, pipeline, directory: Path, dtype: torch.dtype) -> dict:
        extra: dict = {}
        for part in self.parts:
            extra.update(part.export(pipeline, directory, dtype))
        return extra
