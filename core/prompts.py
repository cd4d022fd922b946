"""Weighted prompts with compel, the same way in every mode, in bounded time.

`a (red)++ cat`, `a cat, (blurry)0.5`, `("a cat", "a dog").blend(0.7, 0.3)`: compel turns the
syntax into prompt embeddings that every pipeline accepts, including inpainting (which
dream-templates left unweighted). Prompts longer than 77 tokens are encoded in chunks instead of
being cut off.

compel parses with pyparsing, which backtracks: unmemoised, each unclosed `(` multiplied the
time by about 4 ("((((((((" took 35 s, nine 162 s) and 2,000 of them overflowed the stack. So:
- PACKRAT_CACHE: pyparsing's memoisation, on before compel's grammar is used, makes nesting
  linear (a bounded cache measured faster than an unbounded one on long prompts);
- a prompt without any syntax character skips the parser (most prompts; it is also faster);
- a prompt nested deeper than MAX_NESTING, longer than MAX_WEIGHTED_CHARS with syntax in it, or
  that compel cannot parse, is used as plain text, with a log line saying why.
Both bounds are checked before compel, on the text alone, so the same prompt always gives the
same image (a time limit would make it depend on the machine's load). Measured on two shared
CPU cores, the slowest prompts within the bounds parse in under a second.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)
PACKRAT_CACHE = 128
MAX_NESTING = 6
MAX_WEIGHTED_CHARS = 500
SYNTAX = re.compile(r'[()"+\-\\]')  # every compel operator needs one of these
# Embeddings of the last prompts are kept: the same prompt (the empty negative one above all)
# is not encoded twice. The text encoder is frozen, so this is a pure cache, not request state.
CACHED_PROMPTS = 16


def enable_memoisation() -> None:
    import pyparsing

    pyparsing.ParserElement.enable_packrat(PACKRAT_CACHE)


def nesting_depth(text: str) -> int:
    """How deeply parentheses nest, counting unclosed ones (what makes the parser recurse)."""
    depth = deepest = 0
    for char in text:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(depth - 1, 0)
    return deepest


def why_plain(text: str) -> str | None:
    """Why `text` is used as plain text rather than parsed, or None when it is parsed."""
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        return f"parentheses nest {depth} deep (weighting allows at most {MAX_NESTING})"
    if len(text) > MAX_WEIGHTED_CHARS:
        return (
            f"it has {len(text)} characters with weighting syntax in them (weighted prompts "
            f"can have at most {MAX_WEIGHTED_CHARS}; plain ones more)"
        )
    return None


def plain(text: str):
    """The conjunction compel would parse from a prompt without syntax: one fragment, weight 1."""
    from compel.prompt_parser import Conjunction, FlattenedPrompt

    text = " ".join(re.sub(r",(\S)", r", \1", text).split())  # compel's own normalisation
    return Conjunction(prompts=[FlattenedPrompt([(text, 1.0)])], weights=[1.0])


@dataclass(frozen=True)
class PromptEmbeddings:
    """A request's prompt and negative prompt, as the pipelines take them."""

    positive: torch.Tensor
    negative: torch.Tensor
    pooled: torch.Tensor | None = None  # SDXL: the last encoder's projected embedding
    negative_pooled: torch.Tensor | None = None

    def arguments(self) -> dict:
        arguments = {"prompt_embeds": self.positive, "negative_prompt_embeds": self.negative}
        if self.pooled is not None:
            arguments["pooled_prompt_embeds"] = self.pooled
            arguments["negative_pooled_prompt_embeds"] = self.negative_pooled
        return arguments


@dataclass(frozen=True)
class _Encoded:
    per_encoder: tuple[torch.Tensor, ...]
    pooled: torch.Tensor | None
    reason: str | None

    @property
    def joined(self) -> torch.Tensor:
        """Every encoder's states side by side (the one tensor itself, for one encoder)."""
        if len(self.per_encoder) == 1:
            return self.per_encoder[0]
        return torch.cat(self.per_encoder, dim=-1)


class PromptEncoder:
    """Compel over one text encoder (SD1.5) or several, joined along the features (SDXL, whose
    last encoder also gives the pooled embedding). `rewrite` runs on every prompt first (an
    adapter's trained word -> its new tokens), so the weighting syntax works on top of it.
    `variant` names what else the embeddings depend on (the text encoders' LoRAs and their
    scale): it is part of the cache key."""

    def __init__(
        self,
        tokenizers,
        text_encoders,
        rewrite: Callable[[str], str] | None = None,
        *,
        penultimate: bool = False,
        pooled: bool = False,
    ):
        from compel import Compel, ReturnedEmbeddingsType
        from compel.prompt_parser import PromptParser

        enable_memoisation()
        tokenizers = tokenizers if isinstance(tokenizers, (list, tuple)) else [tokenizers]
        encoders = text_encoders if isinstance(text_encoders, (list, tuple)) else [text_encoders]
        kind = (
            ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            if penultimate
            else ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED
        )
        self.compels = [
            Compel(
                tokenizer=tokenizer,
                text_encoder=encoder,
                truncate_long_prompts=False,
                returned_embeddings_type=kind,
            )
            for tokenizer, encoder in zip(tokenizers, encoders, strict=True)
        ]
        self.pooled = pooled
        self.parser = PromptParser()
        self.rewrite = rewrite or (lambda text: text)
        self.cache: OrderedDict[tuple, _Encoded] = OrderedDict()

    @classmethod
    def for_pipeline(cls, pipeline, spec, rewrite=None):
        """Over a pipeline's text encoders, as the family `spec` names them."""
        return cls(
            [getattr(pipeline, name) for name in spec.tokenizers],
            [getattr(pipeline, name) for name in spec.text_encoders],
            rewrite,
            penultimate=spec.hidden_layer == -2,
            pooled=spec.pooled,
        )

    @property
    def compel(self):
        """The first encoder's compel (the only one of SD1.5)."""
        return self.compels[0]

    def structure(self, text: str):
        """(compel's structure for `text`, why it is plain text or None): parsed when it has
        syntax and is within the bounds."""
        if not SYNTAX.search(text):
            return plain(text), None
        reason = why_plain(text)
        if reason is None:
            try:
                return self.parser.parse_conjunction(text), None
            except Exception as error:  # pyparsing's and compel's own: a prompt is not a bug
                reason = f"the weighting syntax could not be parsed ({error})"
        return plain(text), reason

    def parse(self, text: str):
        return self.structure(text)[0]

    def _embed(self, text: str) -> _Encoded:
        conjunction, reason = self.structure(text)
        try:
            per_encoder = [
                c.build_conditioning_tensor_for_conjunction(conjunction)[0] for c in self.compels
            ]
        except ValueError as error:  # e.g. a conjunction compel cannot combine
            reason = str(error)
            per_encoder = [
                c.build_conditioning_tensor_for_conjunction(plain(text))[0] for c in self.compels
            ]
        pooled = None
        if self.pooled:  # as compel pools: the whole text, truncated to one chunk
            pooled = self.compels[-1].conditioning_provider.get_pooled_embeddings([text])
        return _Encoded(tuple(per_encoder), pooled, reason)

    def _encoded(self, text: str, label: str, variant: tuple) -> _Encoded:
        text = self.rewrite(text)
        key = (variant, text)
        if key in self.cache:
            self.cache.move_to_end(key)
        else:
            self.cache[key] = self._embed(text)
            if len(self.cache) > CACHED_PROMPTS:
                self.cache.popitem(last=False)
        encoded = self.cache[key]
        if encoded.reason:
            log.warning("%s is used as plain text: %s", label, encoded.reason)
        return encoded

    def encode(self, text: str, label: str, variant: tuple = ()) -> torch.Tensor:
        """The embeddings of `text`, from the cache of recent prompts when it is there."""
        return self._encoded(text, label, variant).joined

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        negative_prompt: str | None,
        variant: tuple = (),
        last_only: bool = False,
    ) -> PromptEmbeddings:
        """The embeddings of both prompts, padded to one length. `last_only`: the last
        encoder's states alone (SDXL's refiner is conditioned on text_encoder_2 only), from the
        same cache entries as the full embeddings, so nothing is encoded twice."""
        positive = self._encoded(prompt, "prompt", variant)
        negative = self._encoded(negative_prompt or "", "negative_prompt", variant)
        used = slice(-1, None) if last_only else slice(None)
        pairs = [
            compel.pad_conditioning_tensors_to_same_length([p, n])
            for compel, p, n in zip(
                self.compels[used],
                positive.per_encoder[used],
                negative.per_encoder[used],
                strict=True,
            )
        ]
        return PromptEmbeddings(
            torch.cat([p for p, _ in pairs], dim=-1),
            torch.cat([n for _, n in pairs], dim=-1),
            positive.pooled,
            negative.pooled,
        )
