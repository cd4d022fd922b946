"""New token embeddings (textual inversion, Gal et al. 2022): a word of the prompt learned anew.

`token_string` (e.g. "sks") becomes `num_new_tokens` new tokens `<s0><s1>…` in every tokenizer of
the family (SDXL: both); their rows of each text encoder's embedding start from
`initializer_token`'s row (or random, at that embedding's own scale). Only those rows learn:
after every step every other row is restored bit for bit (the optimizer's weight decay and
momentum would otherwise move them). With `freeze_at`, the rows stop training at that step
(the pivot of pivotal tuning).

The export loads with diffusers' `load_textual_inversion`, Automatic1111 and ComfyUI:

    SD1.5  embeddings.safetensors  {"emb_params": [n, hidden]}
    SDXL   embeddings.safetensors  {"clip_l": [n, hidden_1], "clip_g": [n, hidden_2]}
           embeddings.pti          {"text_encoders_0": …, "text_encoders_1": …} (cog-sdxl's)
    both   special_params.json     {"sks": "<s0><s1>"}, the token map as cog-sdxl writes it
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.errors import UserError
from core.manifest import Part, replace_word
from trainer.methods.base import TEXT_ENCODER, Trainable

EMBEDDINGS_FILE = "embeddings.safetensors"
COG_SDXL_EMBEDDINGS_FILE = "embeddings.pti"
TOKEN_MAP_FILE = "special_params.json"
PORTABLE_KEYS = ("clip_l", "clip_g")  # SDXL's two encoders, as Automatic1111 and ComfyUI name them


class NewTokens(Trainable):
    key = "tokens"

    def __init__(
        self,
        word: str,
        count: int,
        initializer: str | None,
        lr: float,
        seed: int,
        pairs: tuple[tuple[str, str], ...] = (("tokenizer", TEXT_ENCODER),),
    ):
        self.word, self.count, self.initializer, self.lr, self.seed = (
            word,
            count,
            initializer,
            lr,
            seed,
        )
        self.pairs = pairs  # (tokenizer, text encoder) component names
        self.names = [f"<s{i}>" for i in range(count)]
        self.freeze_at: int | None = None  # set by pivotal tuning once the steps are known
        self.first: dict[str, int] = {}  # per text encoder: id of the first new token
        self.original: dict[str, torch.Tensor] = {}

    def modules(self) -> tuple[str, ...]:
        return tuple(encoder for _, encoder in self.pairs)

    def _embedding(self, components: dict, encoder: str) -> torch.nn.Parameter:
        return components[encoder].get_input_embeddings().weight

    def prepare(self, components: dict, device, dtype) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        for tokenizer_name, encoder_name in self.pairs:
            tokenizer, encoder = components[tokenizer_name], components[encoder_name]
            clashes = [name for name in self.names if name in tokenizer.get_vocab()]
            if clashes:
                raise UserError(f"the base model's tokenizer already has tokens {clashes}")
            tokenizer.add_tokens(self.names, special_tokens=True)
            first = tokenizer.convert_tokens_to_ids(self.names[0])
            encoder.resize_token_embeddings(len(tokenizer))
            weight = self._embedding(components, encoder_name)
            with torch.no_grad():
                weight[first:] = self._initial_rows(tokenizer, weight[:first], generator)
            self.first[encoder_name] = first
            self.original[encoder_name] = weight[:first].detach().clone()
            weight.requires_grad_(True)

    def _initial_rows(self, tokenizer, rows: torch.Tensor, generator) -> torch.Tensor:
        if self.initializer is None:
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
        params = [self._embedding(components, name) for name in self.modules()]
        return [{"params": params, "lr": self.lr * lr_scale, "input": "ti_lr"}]

    def at_step(self, components: dict, step: int) -> None:
        frozen = self.freeze_at is not None and step >= self.freeze_at
        for name in self.modules():
            weight = self._embedding(components, name)
            weight.requires_grad_(not frozen)
            if frozen:
                weight.grad = None

    def after_step(self, components: dict) -> None:
        with torch.no_grad():
            for name in self.modules():
                self._embedding(components, name)[: self.first[name]] = self.original[name]

    def rewrite(self, prompt: str) -> str:
        return replace_word(prompt, self.word, "".join(self.names))

    def new_rows(self, components: dict, encoder: str = TEXT_ENCODER) -> torch.Tensor:
        first = self.first[encoder]
        return self._embedding(components, encoder)[first : first + self.count]

    def _state_key(self, encoder: str) -> str:
        return "rows" if encoder == TEXT_ENCODER else f"{encoder}.rows"

    def state_dict(self, components: dict) -> dict[str, torch.Tensor]:
        return {
            self._state_key(name): self.new_rows(components, name).detach().clone()
            for name in self.modules()
        }

    def load_state_dict(self, components: dict, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name in self.modules():
                self.new_rows(components, name).copy_(state[self._state_key(name)])

    def trained_parts(self) -> tuple[Part, ...]:
        return tuple(Part(name) for name in self.modules())

    def export(self, pipeline, directory: Path, dtype: torch.dtype) -> dict:
        from safetensors.torch import save_file

        rows = [
            self.new_rows({name: getattr(pipeline, name)}, name).detach().to(dtype).contiguous()
            for name in self.modules()
        ]
        if len(rows) == 1:
            save_file({"emb_params": rows[0]}, directory / EMBEDDINGS_FILE)
        else:
            save_file(dict(zip(PORTABLE_KEYS, rows, strict=True)), directory / EMBEDDINGS_FILE)
            cog_sdxl = {f"text_encoders_{i}": row for i, row in enumerate(rows)}
            save_file(cog_sdxl, directory / COG_SDXL_EMBEDDINGS_FILE)
        token_map = {self.word: "".join(self.names)}
        (directory / TOKEN_MAP_FILE).write_text(json.dumps(token_map) + "\n")
        return {"embeddings": EMBEDDINGS_FILE, "token_string": self.word, "tokens": self.names}
