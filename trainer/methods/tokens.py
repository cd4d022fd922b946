"""New token embeddings (textual inversion, Gal et al. 2022): a word of the prompt learned anew.

`token_string` (e.g. "sks") becomes `num_new_tokens` new tokens `<s0><s1>…` in the tokenizer;
their rows of the text encoder's embedding start from `initializer_token`'s row (or random, at
the embeddings' own scale). Only those rows learn: after every step every other row is restored
bit for bit (the optimizer's weight decay and momentum would otherwise move them). With
`freeze_at`, the rows stop training at that step (the pivot of pivotal tuning).

The export, in Automatic1111's form, loads with diffusers' `load_textual_inversion` too:

    embeddings.safetensors    {"emb_params": [num_new_tokens, hidden]}
    special_params.json       {"sks": "<s0><s1>"}, the token map as cog-sdxl writes it
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.errors import UserError
from core.manifest import Part, replace_word
from trainer.methods.base import TEXT_ENCODER, Trainable

EMBEDDINGS_FILE = "embeddings.safetensors"
TOKEN_MAP_FILE = "special_params.json"


class NewTokens(Trainable):
    key = "tokens"

    def __init__(self, word: str, count: int, initializer: str | None, lr: float, seed: int):
        self.word, self.count, self.initializer, self.lr, self.seed = (
            word,
            count,
            initializer,
            lr,
            seed,
        )
        self.names = [f"<s{i}>" for i in range(count)]
        self.freeze_at: int | None = None  # set by pivotal tuning once the steps are known
        self.first = 0  # id of the first new token
        self.original: torch.Tensor | None = None

    def modules(self) -> tuple[str, ...]:
        return (TEXT_ENCODER,)

    def _embedding(self, components: dict) -> torch.nn.Parameter:
        return components[TEXT_ENCODER].get_input_embeddings().weight

    def prepare(self, components: dict, device, dtype) -> None:
        tokenizer, encoder = components["tokenizer"], components[TEXT_ENCODER]
        clashes = [name for name in self.names if name in tokenizer.get_vocab()]
        if clashes:
            raise UserError(f"the base model's tokenizer already has tokens {clashes}")
        tokenizer.add_tokens(self.names, special_tokens=True)
        self.first = tokenizer.convert_tokens_to_ids(self.names[0])
        encoder.resize_token_embeddings(len(tokenizer))
        weight = self._embedding(components)
        with torch.no_grad():
            weight[self.first :] = self._initial_rows(tokenizer, weight[: self.first])
        self.original = weight[: self.first].detach().clone()
        weight.requires_grad_(True)

    def _initial_rows(self, tokenizer, rows: torch.Tensor) -> torch.Tensor:
        if self.initializer is None:
            generator = torch.Generator().manual_seed(self.seed)
            noise = torch.randn((self.count, rows.shape[1]), generator=generator)
            return (noise * rows.float().std()).to(rows.dtype)
        ids = tokenizer.encode(self.initializer, add_special_tokens=False)
        if len(ids) != 1:
            raise UserError(
                f"initializer_token={self.initializer!r} is {len(ids)} tokens for this model's "
                "tokenizer; give a common word that is one token (e.g. dog, person, style)"
            )
        return rows[ids[0]].expand(self.count, -1).clone()

    def parameter_groups(self, components: dict, lr_scale: float) -> list[dict]:
        return [
            {"params": [self._embedding(components)], "lr": self.lr * lr_scale, "input": "ti_lr"}
        ]

    def at_step(self, components: dict, step: int) -> None:
        frozen = self.freeze_at is not None and step >= self.freeze_at
        weight = self._embedding(components)
        weight.requires_grad_(not frozen)
        if frozen:
            weight.grad = None

    def after_step(self, components: dict) -> None:
        with torch.no_grad():
            self._embedding(components)[: self.first] = self.original

    def rewrite(self, prompt: str) -> str:
        return replace_word(prompt, self.word, "".join(self.names))

    def new_rows(self, components: dict) -> torch.Tensor:
        return self._embedding(components)[self.first : self.first + self.count]

    def state_dict(self, components: dict) -> dict[str, torch.Tensor]:
        return {"rows": self.new_rows(components).detach().clone()}

    def load_state_dict(self, components: dict, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.new_rows(components).copy_(state["rows"])

    def trained_parts(self) -> tuple[Part, ...]:
        return (Part.TEXT_ENCODER,)

    def export(self, pipeline, directory: Path, dtype: torch.dtype) -> dict:
        from safetensors.torch import save_file

        rows = self.new_rows({TEXT_ENCODER: pipeline.text_encoder}).detach().to(dtype)
        save_file({"emb_params": rows.contiguous()}, directory / EMBEDDINGS_FILE)
        token_map = {self.word: "".join(self.names)}
        (directory / TOKEN_MAP_FILE).write_text(json.dumps(token_map) + "\n")
        return {"embeddings": EMBEDDINGS_FILE, "token_string": self.word, "tokens": self.names}
