"""What every template adapter shares: load once in setup(), turn inputs into a request, stream.

`setup()` never fails because of the SD weights: a template must boot (and report READY)
before the build step copies weights in, and a template whose weights are broken must say why
to whoever predicts, which a server whose setup failed cannot (coglet answers 503 "Setup has
not finished yet"). So any UserError while finding or loading them is kept, logged, and raised
by every prediction instead.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path

from core import logs, weights
from core.adapters import find_weights
from core.errors import UserError
from core.images import open_mask, open_rgb
from core.pipelines import Engine
from core.requests import GenerationRequest
from core.uploads import require_upload
from templates.outputs import OutputFolder
from templates.specs import TemplateSpec, current

log = logging.getLogger(__name__)
# PNG compression level for returned images: 1 is several times faster to encode than Pillow's
# default 6 for about a tenth more bytes (bench/infer.py measures the request path).
PNG_COMPRESS_LEVEL = 1
RENAMED = {"disable_safety_check": "disable_safety_checker"}  # request field -> cog-sdxl input


class TemplateRunner:
    """Base of the Cog adapter classes in templates/predict.py."""

    default_template = "vanilla"
    spec: TemplateSpec
    engine: Engine | None
    unusable: UserError | None

    def setup(self) -> None:
        logs.configure()
        self.spec = current(self.default_template)
        self.outputs = OutputFolder(self.spec.name)
        self.sd, self.engine, self.unusable, adapter = None, None, None, None
        try:
            self.sd, adapter = find_weights((self.spec.family,))
            if self.sd is not None:
                self.engine = Engine.load(
                    self.sd,
                    template_dir=weights.template_weights_dir(),
                    control=self.spec.control,
                    adapter=adapter,
                    template=self.spec.name,
                )
        except UserError as error:
            self.unusable = error
            log.error("%s (every prediction will fail with this message)", error)
            return
        if self.sd is None:
            print(weights.TEMPLATE_MESSAGE, flush=True)
            return
        self.default_prompt = (
            adapter.manifest.instance_prompt if adapter else self.sd.default_prompt
        ) or self.spec.default_prompt
        on_top = f" + the {adapter.manifest.method.value} adapter in weights/" if adapter else ""
        print(
            f"{self.spec.name}: loaded {self.sd.directory.name}/{on_top} ({self.sd.family.value})"
        )

    def ready(self) -> Engine:
        """The engine, or the reason this template cannot generate."""
        if self.unusable is not None:
            raise type(self.unusable)(str(self.unusable))
        weights.require(self.sd)
        return self.engine

    def request(self, inputs: dict) -> GenerationRequest:
        images = {}
        for name in ("image", "control_image"):
            path = inputs.pop(name, None)
            images[name] = open_rgb(path, label=name) if path is not None else None
        mask = inputs.pop("mask", None)
        images["mask"] = open_mask(mask, label="mask") if mask is not None else None
        prompt = inputs.pop("prompt") or self.default_prompt
        if not prompt:
            raise UserError("prompt is required: these weights record no instance prompt")
        lora_weights, lora_input = self.lora_weights(inputs)
        seed = inputs.pop("seed")
        seed = random.randint(0, 2**32 - 1) if seed is None else seed
        control_params = {k: inputs.pop(k) for k in self.spec.control_inputs if k in inputs}
        for ours, theirs in RENAMED.items():  # cog-sdxl's names for the same inputs
            if theirs in inputs:
                inputs[ours] = inputs.pop(theirs)
        return GenerationRequest(
            prompt=prompt,
            seed=seed,
            control_params=control_params,
            lora_weights=lora_weights,
            lora_input=lora_input,
            size=self.spec.size,
            **images,
            **inputs,
        )

    @staticmethod
    def lora_weights(inputs: dict) -> tuple[Path | None, str]:
        """(lora_weights or cog-sdxl's name for it, replicate_weights (not both), which)."""
        ours = require_upload("lora_weights", inputs.pop("lora_weights", None))
        theirs = require_upload("replicate_weights", inputs.pop("replicate_weights", None))
        if ours is not None and theirs is not None:
            raise UserError("give lora_weights or replicate_weights (the same input), not both")
        return (theirs, "replicate_weights") if theirs is not None else (ours, "lora_weights")

    def generate(self, inputs: dict) -> Iterator[Path]:
        engine = self.ready()
        request = self.request(dict(inputs))
        folder = self.outputs.fresh()
        for index, image in enumerate(engine.generate(request)):
            path = folder / f"out-{index}.png"
            image.save(path, compress_level=PNG_COMPRESS_LEVEL)
            yield path
