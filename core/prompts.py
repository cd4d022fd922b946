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


class PromptEncoder:
    """`rewrite` runs on every prompt first (an adapter's trained word -> its new tokens), so
    the weighting syntax works on top of it. `variant` names what else the embeddings depend
    on (the text encoder's LoRAs and their scale): it is part of the cache key."""

    def __init__(self, tokenizer, text_encoder, rewrite: Callable[[str], str] | None = None):
        from compel import Compel
        from compel.prompt_parser import PromptParser

        enable_memoisation()
        self.compel = Compel(
            tokenizer=tokenizer, text_encoder=text_encoder, truncate_long_prompts=False
        )
        self.parser = PromptParser()
        self.rewrite = rewrite or (lambda text: text)
        self.cache: OrderedDict[tuple, tuple[torch.Tensor, str | None]] = OrderedDict()

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

    def _embed(self, text: str) -> tuple[torch.Tensor, str | None]:
        conjunction, reason = self.structure(text)
        try:
            embeddings, _ = self.compel.build_conditioning_tensor_for_conjunction(conjunction)
        except ValueError as error:  # e.g. a conjunction compel cannot combine
            reason = str(error)
            embeddings, _ = self.compel.build_conditioning_tensor_for_conjunction(plain(text))
        return embeddings, reason

    def encode(self, text: str, label: str, variant: tuple = ()) -> torch.Tensor:
        """The embeddings of `text`, from the cache of recent prompts when it is there."""
        text = self.rewrite(text)
        key = (variant, text)
        if key in self.cache:
            self.cache.move_to_end(key)
        else:
            self.cache[key] = self._embed(text)
            if len(self.cache) > CACHED_PROMPTS:
                self.cache.popitem(last=False)
        embeddings, reason = self.cache[key]
        if reason:
            log.warning("%s is used as plain text: %s", label, reason)
        return embeddings

    @torch.no_grad()
    def __call__(
        self, prompt: str, negative_prompt: str | None, variant: tuple = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positive = self.encode(prompt, "prompt", variant)
        negative = self.encode(negative_prompt or "", "negative_prompt", variant)
        positive, negative = self.compel.pad_conditioning_tensors_to_same_length(
            [positive, negative]
        )
        return positive, negative
