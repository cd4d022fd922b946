"""The contract between the trainer and the templates.

`output.zip` (and therefore `/src/weights` in a template image) is a diffusers `save_pretrained`
folder plus `manifest.json`, a small typed record of what was trained. Templates read it for
the default prompt, the family and which parts changed; a folder without one is treated as a
plain diffusers pipeline.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from core.errors import UserError

MANIFEST_FILE = "manifest.json"
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers/peft keys, as save_lora_weights names it
PLACEHOLDER = "TOK"  # the word prompts use for the trained subject, as on Replicate
FORMAT_VERSION = 1


class Family(str, Enum):
    SD15 = "sd15"
    SDXL = "sdxl"


class Method(str, Enum):
    DREAMBOOTH = "dreambooth"
    LORA = "lora"
    TEXTUAL_INVERSION = "textual_inversion"
    PIVOTAL = "pivotal"


class Part(str, Enum):
    UNET = "unet"
    TEXT_ENCODER = "text_encoder"
    TEXT_ENCODER_2 = "text_encoder_2"


class ManifestError(UserError):
    pass


def _enum(cls: type[Enum], name: str, value: object) -> Enum:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(member.value for member in cls)
        raise ManifestError(f"{MANIFEST_FILE}: {name}={value!r} is not one of {allowed}") from None


@dataclass(frozen=True)
class Adapter:
    """What an adapter output (lora, textual_inversion, pivotal) holds besides the manifest.

    File names are relative to the folder; a template loads them on top of its own base.
    """

    lora: str | None = None  # diffusers/peft LoRA: pipeline.load_lora_weights
    lora_kohya: str | None = None  # the same LoRA in kohya keys (Automatic1111, ComfyUI)
    unet: str | None = None  # a whole fine-tuned UNet to load over the base (SDXL, as cog-sdxl)
    lora_rank: int | None = None
    lora_alpha: float | None = None
    embeddings: str | None = None  # SD1.5 {"emb_params": [n, hidden]}; SDXL {"clip_l", "clip_g"}
    token_string: str | None = None  # the word of a prompt that the new tokens stand for
    tokens: tuple[str, ...] = ()  # the new tokens, e.g. ("<s0>", "<s1>")

    def rewrite(self, prompt: str) -> str:
        """The prompt with the trained word (token_string, or the placeholder TOK) replaced by
        the new tokens, e.g. "a photo of TOK" -> "a photo of <s0><s1>"; as written otherwise."""
        if not self.tokens:
            return prompt
        for word in dict.fromkeys(w for w in (self.token_string, PLACEHOLDER) if w):
            prompt = replace_word(prompt, word, "".join(self.tokens))
        return prompt

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        for name in ("lora", "lora_kohya", "unet", "embeddings"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or "/" in value or ".." in value):
                raise ManifestError(f"{MANIFEST_FILE}: adapter.{name} must be a file name")
        if self.embeddings and not (self.token_string and self.tokens):
            raise ManifestError(
                f"{MANIFEST_FILE}: adapter.embeddings needs token_string and tokens"
            )

    @classmethod
    def from_dict(cls, data: object) -> Adapter:
        if not isinstance(data, dict):
            raise ManifestError(f"{MANIFEST_FILE}: adapter must be a JSON object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError as error:
            raise ManifestError(f"{MANIFEST_FILE}: adapter: {error}") from None


@dataclass(frozen=True)
class Manifest:
    family: Family
    method: Method
    base: str
    instance_prompt: str
    token: str | None = None
    trained_parts: tuple[Part, ...] = ()
    resolution: int = 512
    format_version: int = FORMAT_VERSION
    base_fingerprint: str | None = None  # core.fingerprint of the base it was trained on
    adapter: Adapter | None = None  # set for every method but dreambooth (a full pipeline)
    extra: dict = field(default_factory=dict)

    @property
    def is_adapter(self) -> bool:
        """Files to load on top of a base: every method but an SD1.5 dreambooth (a whole
        pipeline); the SDXL trainer's dreambooth is a UNet (adapter.unet) and its tokens."""
        return self.adapter is not None

    def __post_init__(self) -> None:
        if isinstance(self.adapter, dict):
            object.__setattr__(self, "adapter", Adapter.from_dict(self.adapter))
        object.__setattr__(self, "family", _enum(Family, "family", self.family))
        object.__setattr__(self, "method", _enum(Method, "method", self.method))
        parts = tuple(_enum(Part, "trained_parts", p) for p in self.trained_parts)
        object.__setattr__(self, "trained_parts", parts)
        if not isinstance(self.format_version, int) or self.format_version < 1:
            raise ManifestError(f"{MANIFEST_FILE}: format_version must be a positive integer")
        if self.format_version > FORMAT_VERSION:
            raise ManifestError(
                f"{MANIFEST_FILE}: format_version {self.format_version} was written by a newer "
                f"trainer; this code reads up to {FORMAT_VERSION}. Update the template."
            )
        if not isinstance(self.instance_prompt, str) or not self.instance_prompt.strip():
            raise ManifestError(f"{MANIFEST_FILE}: instance_prompt must be a non-empty string")
        if not isinstance(self.resolution, int) or self.resolution <= 0:
            raise ManifestError(f"{MANIFEST_FILE}: resolution must be a positive integer")
        if self.method is not Method.DREAMBOOTH and self.adapter is None:
            raise ManifestError(
                f"{MANIFEST_FILE}: method {self.method.value} needs the adapter's files (adapter)"
            )

    def to_dict(self) -> dict:
        data = asdict(self)
        extra = data.pop("extra")
        data = {**extra, **data}  # fields from newer trainers round-trip at the top level
        data["family"] = self.family.value
        data["method"] = self.method.value
        data["trained_parts"] = [p.value for p in self.trained_parts]
        if self.adapter is None:
            data.pop("adapter")
        else:
            data["adapter"]["tokens"] = list(self.adapter.tokens)
        return data

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest | None:
        """The manifest in `directory`, or None for a plain diffusers folder."""
        path = Path(directory) / MANIFEST_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ManifestError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{path}: expected a JSON object")
        known = set(cls.__dataclass_fields__) - {"extra"}
        unknown = {k: v for k, v in data.items() if k not in known}
        try:
            return cls(**{k: v for k, v in data.items() if k in known}, extra=unknown)
        except TypeError as error:
            raise ManifestError(f"{path}: {error}") from None


def identifier_token(instance_prompt: str, class_prompt: str | None) -> str | None:
    """The rare word that names the subject: in the instance prompt but not the class prompt.

    "a photo of sks dog" vs "a photo of a dog" -> "sks". None when it is not exactly one word.
    """
    words = re.findall(r"[\w<>]+", instance_prompt.lower())
    common = set(re.findall(r"[\w<>]+", (class_prompt or "").lower()))
    new = [w for w in dict.fromkeys(words) if w not in common]
    return new[0] if len(new) == 1 else None


def replace_word(prompt: str, word: str, replacement: str) -> str:
    """Every whole-word `word` of `prompt` (any case) replaced; `<s0>`-style tokens count as
    word characters, so "sks" inside "<sks>" or "sksy" is left alone."""
    pattern = rf"(?<![\w<>]){re.escape(word)}(?![\w<>])"
    return re.sub(pattern, lambda _: replacement, prompt, flags=re.IGNORECASE)
