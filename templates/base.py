"""What every template adapter shares: load once in setup(), turn inputs into a request, stream.

`setup()` never fails for missing SD weights: a template must boot (and report READY) before the
build step copies weights in; `run` then fails with one clear message.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core import logs, weights
from core.errors import UserError
from core.images import open_mask, open_rgb
from core.pipelines import Engine
from core.requests import GenerationRequest
from templates.specs import TemplateSpec, current


class TemplateRunner:
    """Base of the Cog adapter classes in templates/predict.py."""

    default_template = "vanilla"
    spec: TemplateSpec
    engine: Engine | None

    def setup(self) -> None:
        logs.configure()
        self.spec = current(self.default_template)
        self.outputs = Path(tempfile.mkdtemp(prefix=f"{self.spec.name}-outputs-"))
        self.sd = weights.find()
        self.engine = None
        if self.sd is None:
            print(weights.TEMPLATE_MESSAGE, flush=True)
            return
        self.engine = Engine.load(
            self.sd, template_dir=weights.template_weights_dir(), control=self.spec.control
        )
        print(f"{self.spec.name}: loaded {self.sd.directory} ({self.sd.family.value})", flush=True)

    def request(self, inputs: dict) -> GenerationRequest:
        images = {}
        for name in ("image", "control_image"):
            path = inputs.pop(name, None)
            images[name] = open_rgb(path, label=name) if path is not None else None
        mask = inputs.pop("mask", None)
        images["mask"] = open_mask(mask, label="mask") if mask is not None else None
        prompt = inputs.pop("prompt") or weights.require(self.sd).default_prompt
        if not prompt:
            raise UserError("prompt is required: these weights record no instance prompt")
        seed = inputs.pop("seed")
        seed = random.randint(0, 2**32 - 1) if seed is None else seed
        control_params = {
            k: inputs.pop(k) for k in ("low_threshold", "high_threshold") if k in inputs
        }
        return GenerationRequest(
            prompt=prompt, seed=seed, control_params=control_params, **images, **inputs
        )

    def generate(self, inputs: dict) -> Iterator[Path]:
        weights.require(self.sd)
        request = self.request(dict(inputs))
        shutil.rmtree(self.outputs, ignore_errors=True)  # the previous request's files
        self.outputs.mkdir(parents=True)
        for index, image in enumerate(self.engine.generate(request)):
            path = self.outputs / f"out-{index}.png"
            image.save(path)
            yield path
