"""Adapters on top of a base: the trainer's adapter output in $WEIGHTS_DIR, and per-request LoRAs.

An adapter output (method lora, textual_inversion or pivotal) holds no base weights: the base
comes from $BASE_WEIGHTS_DIR, is checked like any weights folder, and must be the one it was
trained on (manifest.json records its fingerprint). At setup, once, before the prompt encoder
is built, its LoRA is loaded with diffusers' `load_lora_weights` into the modules every mode's
pipeline shares (ControlNet modes included) and its embeddings with `load_textual_inversion`.

Per request, `Adapters.active()` chooses which LoRAs run (the output's, plus a request's
`lora_weights`, core/lora_uploads.py) and puts the choice back after the request, so a request
without `lora_weights` is the base (or the output) again, bit for bit. The strength,
`lora_scale`, is never stored: it goes to the UNet with the call (`cross_attention_kwargs`) and
to the text encoder around the prompt's encoding, as diffusers' own `encode_prompt` does it.
Each request first resets every active LoRA to its own alpha / rank, so no rounding of an
earlier request's scaling carries over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core import families
from core.errors import UserError, WeightsMissingError
from core.fingerprint import fingerprint_dir
from core.manifest import Family, Manifest
from core.weights import (
    SDWeights,
    base_weights_dir,
    broken,
    check_safetensors,
    find,
    public,
    read_manifest,
    weights_dir,
)

log = logging.getLogger(__name__)
OUTPUT_ADAPTER = "weights"  # the adapter name of the LoRA in $WEIGHTS_DIR


class BaseMismatchError(UserError):
    """The adapter output was trained on another base than the one in $BASE_WEIGHTS_DIR."""


@dataclass(frozen=True)
class AdapterWeights:
    """An adapter output in $WEIGHTS_DIR, its files checked (not loaded)."""

    directory: Path
    manifest: Manifest

    @property
    def adapter(self):
        return self.manifest.adapter

    def file(self, name: str | None) -> Path | None:
        return self.directory / name if name else None

    def check(self) -> None:
        for name in (self.adapter.lora, self.adapter.embeddings, self.adapter.unet):
            path = self.file(name)
            if path is not None and not path.is_file():
                raise broken(self.directory, name, "is missing (manifest.json lists it)")
            if path is not None:
                check_safetensors(self.directory, path)


def find_weights(
    serves: tuple[Family, ...] = (Family.SD15,),
) -> tuple[SDWeights | None, AdapterWeights | None]:
    """(the base to load, the adapter output on top of it or None), both checked."""
    directory = weights_dir()
    manifest = read_manifest(directory) if directory.is_dir() else None
    if manifest is None or not manifest.is_adapter:
        return find(directory, serves), None
    adapter = AdapterWeights(directory, manifest)
    adapter.check()
    base = find(base_weights_dir(), serves)
    if base is None:
        raise WeightsMissingError(
            f"The weights in {directory.name}/ are a {manifest.method.value} adapter, which loads "
            f"on top of its base ({manifest.base!r}), and {base_weights_dir().name}/ holds no "
            f"base: copy the {families.of(manifest.family).label} diffusers folder it was "
            "trained on to /src/base-weights (or set BASE_WEIGHTS_DIR)"
        )
    check_base(adapter, base)
    return base, adapter


def check_base(adapter: AdapterWeights, base: SDWeights) -> None:
    manifest = adapter.manifest
    if manifest.family is not base.family:
        raise BaseMismatchError(
            f"The weights in {adapter.directory.name}/ are a {manifest.family.value} adapter but "
            f"{base.directory.name}/ holds a {base.family.value} base"
        )
    actual = fingerprint_dir(base.directory)
    if manifest.base_fingerprint is None:
        log.warning("%s/manifest.json records no base fingerprint", adapter.directory.name)
    elif manifest.base_fingerprint != actual:
        raise BaseMismatchError(
            f"The weights in {adapter.directory.name}/ are a {manifest.method.value} adapter "
            f"trained on base {manifest.base!r} (fingerprint {manifest.base_fingerprint}), but "
            f"{base.directory.name}/ holds another base (fingerprint {actual}). Copy the base "
            "it was trained on to /src/base-weights, or train the adapter on this base"
        )


@dataclass(frozen=True)
class LoraCall:
    """Which LoRAs one request runs, at what strength, and its upload's tokens (if any)."""

    names: tuple[str, ...] = ()
    scale: float = 1.0
    upload: object | None = None  # core.lora_uploads.Upload

    def rewrite(self, prompt: str | None) -> str | None:
        """TOK as the upload's tokens, for this request (before the weights' own rewrite)."""
        return self.upload.rewrite(prompt) if self.upload is not None and prompt else prompt

    def pipeline_arguments(self) -> dict:
        return {"cross_attention_kwargs": {"scale": self.scale}} if self.names else {}


class Adapters:
    """The LoRAs loaded into a pipeline's shared modules, and which of them a request runs."""

    def __init__(self, pipeline, spec, output: AdapterWeights | None = None):
        from core.lora_uploads import Uploads

        self.pipeline = pipeline
        self.spec = spec
        self.output = output
        self.baked: tuple[str, ...] = ()
        self.uploads = Uploads(self)
        if output is not None:
            self._apply(output)

    def _apply(self, output: AdapterWeights) -> None:
        adapter = output.adapter
        try:
            if adapter.unet:
                self._load_unet(output.file(adapter.unet))
            if adapter.lora:
                self.pipeline.load_lora_weights(
                    output.directory,
                    weight_name=adapter.lora,
                    adapter_name=OUTPUT_ADAPTER,
                    use_safetensors=True,
                )
                self.baked = (OUTPUT_ADAPTER,)
            if adapter.embeddings:
                self.load_embeddings(output.file(adapter.embeddings), adapter.tokens)
        except UserError:
            raise
        except Exception as error:  # the library's message, made fit for a user
            reason = first_reason(error, output.directory)
            raise broken(output.directory, "adapter", f"could not be loaded ({reason})") from None
        log.info("adapter %s loaded from %s/", output.manifest.method.value, output.directory.name)

    def _load_unet(self, path: Path) -> None:
        """A whole fine-tuned UNet over the base's (cog-sdxl's `unet.safetensors`)."""
        from safetensors.torch import load_file

        unet = self.pipeline.unet
        state = load_file(path, device=str(unet.device))
        missing, unexpected = unet.load_state_dict(state, strict=False)
        if missing or unexpected:
            names = sorted(missing or unexpected)
            what = "lacks" if missing else "has tensors the base's UNet does not:"
            raise broken(path.parent, path.name, f"{what} {len(names)} (first: {names[0]})")

    def load_embeddings(self, path: Path, tokens: tuple[str, ...]) -> None:
        """One row per new token in each text encoder, so each token is exactly the manifest's."""
        from safetensors.torch import load_file

        state = load_file(path)
        for key, encoder, tokenizer in zip(
            self.spec.embedding_keys, self.spec.text_encoders, self.spec.tokenizers, strict=True
        ):
            rows = state.get(key)
            if rows is None:
                raise broken(path.parent, path.name, f"has no {key} (keys: {sorted(state)})")
            if rows.ndim != 2 or rows.shape[0] != len(tokens):
                raise broken(
                    path.parent,
                    path.name,
                    f"{key} is {list(rows.shape)}; manifest.json lists {len(tokens)} tokens",
                )
            self.pipeline.load_textual_inversion(
                list(rows),
                token=list(tokens),
                text_encoder=getattr(self.pipeline, encoder),
                tokenizer=getattr(self.pipeline, tokenizer),
            )

    def unload_tokens(self, tokens: tuple[str, ...]) -> None:
        for encoder, tokenizer in zip(self.spec.text_encoders, self.spec.tokenizers, strict=True):
            self.pipeline.unload_textual_inversion(
                list(tokens),
                tokenizer=getattr(self.pipeline, tokenizer),
                text_encoder=getattr(self.pipeline, encoder),
            )

    def rewrite(self, prompt: str) -> str:
        """The prompt with the output's trained word replaced by its new tokens."""
        if self.output is None or not self.output.adapter.tokens:
            return prompt
        return self.output.adapter.rewrite(prompt)

    def holding(self, module) -> set[str]:
        return set(getattr(module, "peft_config", None) or {})

    def activate(self, names: tuple[str, ...]) -> None:
        """Run exactly `names` (at their own alpha / rank) in every module holding LoRAs."""
        from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

        for module in self.modules():
            held = self.holding(module)
            wanted = [name for name in names if name in held]
            if not held:
                continue
            set_adapter_layers(module, enabled=bool(wanted))
            if wanted:
                set_weights_and_activate_adapters(module, wanted, [1.0] * len(wanted))

    def modules(self) -> list:
        return [getattr(self.pipeline, name) for name in self.spec.lora_modules]

    def text_encoders(self, call: LoraCall) -> list:
        """The text encoders that hold one of the call's LoRAs."""
        encoders = [getattr(self.pipeline, name) for name in self.spec.text_encoders]
        return [e for e in encoders if any(n in self.holding(e) for n in call.names)]

    @contextmanager
    def active(
        self, upload: Path | None, scale: float, label: str = "lora_weights"
    ) -> Iterator[LoraCall]:
        """The LoRAs of one request: the output's and `upload`'s (given as the input `label`);
        the output's alone after."""
        loaded = self.uploads.load(upload, label) if upload is not None else None
        names = self.baked + ((loaded.name,) if loaded is not None else ())
        self.activate(names)
        try:
            yield LoraCall(names, scale, loaded)
        finally:
            self.activate(self.baked)

    def prompt_variant(self, call: LoraCall) -> tuple:
        """What the prompt embeddings depend on besides the text: the text encoder's LoRAs."""
        held = set().union(*(self.holding(e) for e in self.text_encoders(call)))
        names = tuple(name for name in call.names if name in held)
        return (names, call.scale) if names else ()

    @contextmanager
    def text_encoder_scaled(self, call: LoraCall) -> Iterator[None]:
        from diffusers.utils.peft_utils import scale_lora_layers, unscale_lora_layers

        encoders = self.text_encoders(call)
        for encoder in encoders:
            scale_lora_layers(encoder, call.scale)
        try:
            yield
        finally:
            for encoder in encoders:
                unscale_lora_layers(encoder, call.scale)

    def delete(self, name: str) -> None:
        if any(name in self.holding(module) for module in self.modules()):
            self.pipeline.delete_adapters(name)


def first_reason(error: Exception, directory: Path) -> str:
    """A library's loading error in one line: the first size mismatch when there is one."""
    lines = str(error).strip().splitlines()
    mismatch = next((line.strip() for line in lines if "size mismatch" in line), None)
    return public(mismatch or str(error) or type(error).__name__, directory)
