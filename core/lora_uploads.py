"""A request's `lora_weights`: an adapter output (zip or tar) or a LoRA .safetensors, checked.

The file is known by its bytes, never its name (uploads arrive as `/tmp/tmpXXXXfile`): a zip or
a tar (the SDXL trainer's trained_model.tar, cog-sdxl's `replicate_weights`) is unpacked with
the project's bounded extractor (core/archive.py) and its LoRA is the one its
manifest.json names (else its one `.safetensors`); a pickle, a truncated file, tensors that are
not LoRA weights, or LoRA weights whose shapes do not fit the base are refused with a
UserError that says which. The LoRA is loaded under a name made of its content digest and kept
loaded (CACHED_LORAS of them, least recently used dropped first), so a repeated `lora_weights`
costs only the switch; diffusers reads it from a `.safetensors` file so its rank and alpha
metadata come with it. A pivotal output (cog-sdxl's `replicate_weights` is one) brings its new
tokens too: they are loaded into every text encoder under names of their own (`<digest-i>`, so
they never collide with the weights' tokens), and for that request TOK (or its token_string)
stands for them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tarfile
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from core.archive import ArchiveLimits, extract
from core.errors import UserError
from core.fingerprint import fingerprint_file
from core.manifest import LORA_FILE, MANIFEST_FILE, Adapter, Manifest, ManifestError
from core.safetensors_file import PICKLE_SUFFIXES, describe, read_header
from core.weights import public

log = logging.getLogger(__name__)
LABEL = "lora_weights"
CACHED_LORAS = 4
# An adapter output.zip is a few files of dense tensors: it cannot unpack to much more.
LIMITS = ArchiveLimits(max_files=100, max_total_bytes=2 * 2**30, max_member_bytes=2 * 2**30)


@dataclass(frozen=True)
class Upload:
    """A loaded upload: its LoRA's adapter name, and its trained tokens (renamed) if any."""

    name: str
    words: Adapter | None = None

    def rewrite(self, prompt: str) -> str:
        return self.words.rewrite(prompt) if self.words else prompt


class Uploads:
    """The uploaded LoRAs loaded into an Adapters' modules, by content digest."""

    def __init__(self, adapters):
        self.adapters = adapters
        self.loaded: OrderedDict[str, Upload] = OrderedDict()  # digest -> what it loaded

    def load(self, path: Path, label: str = LABEL) -> Upload:
        """The upload in `path`, loaded now unless it already is. `label` is the input it came
        in (cog-sdxl's replicate_weights is another name for lora_weights): errors name it."""
        try:
            return self._loaded(path)
        except UserError as error:
            message = str(error)
            if label != LABEL and message.startswith(LABEL):
                raise UserError(label + message[len(LABEL) :]) from None
            raise

    def _loaded(self, path: Path) -> Upload:
        digest = fingerprint_file(path)
        if digest in self.loaded:
            self.loaded.move_to_end(digest)
            return self.loaded[digest]
        name = f"upload-{digest}"
        with tempfile.TemporaryDirectory(prefix="lora-weights-") as scratch:
            folder, weight_name = lora_file(Path(path), Path(scratch))
            self._load(folder, weight_name, name)
            words = self._load_tokens(folder, digest, name)
        self.loaded[digest] = Upload(name, words)
        if len(self.loaded) > CACHED_LORAS:
            _, oldest = self.loaded.popitem(last=False)
            self.adapters.delete(oldest.name)
            if oldest.words:
                self.adapters.unload_tokens(oldest.words.tokens)
        tokens = f" and tokens {', '.join(words.tokens)}" if words else ""
        log.info("%s: loaded LoRA %s (%s)%s", LABEL, digest, weight_name, tokens)
        return self.loaded[digest]

    def _load_tokens(self, folder: Path, digest: str, name: str) -> Adapter | None:
        """The upload's trained tokens, under names of their own, when its manifest has them."""
        if not (folder / MANIFEST_FILE).is_file():
            return None
        adapter = Manifest.read(folder).adapter
        if adapter is None or not adapter.embeddings or not adapter.tokens:
            return None
        path = folder / adapter.embeddings
        if not path.is_file():
            raise UserError(
                f"{LABEL}: the archive lacks {adapter.embeddings} (its manifest lists it)"
            )
        read_header(path, label=LABEL)
        tokens = tuple(f"<{digest[:8]}-{i}>" for i in range(len(adapter.tokens)))
        try:
            self.adapters.load_embeddings(path, tokens)
        except UserError as error:
            self.adapters.delete(name)
            raise UserError(f"{LABEL}: {public(str(error), folder)}") from None
        return dataclasses.replace(adapter, tokens=tokens)

    def _load(self, folder: Path, weight_name: str, name: str) -> None:
        from core.adapters import first_reason

        try:
            self.adapters.pipeline.load_lora_weights(
                folder, weight_name=weight_name, adapter_name=name, use_safetensors=True
            )
        except Exception as error:  # a LoRA that does not fit is the caller's, not a bug
            self.adapters.delete(name)
            raise UserError(
                f"{LABEL}: {weight_name} could not be loaded onto this template's base "
                f"({first_reason(error, folder)}); it must be an {self.adapters.spec.label} LoRA"
            ) from None
        if not any(name in self.adapters.holding(m) for m in self.adapters.modules()):
            raise UserError(
                f"{LABEL}: {weight_name} matched no layer of this template's "
                f"{self.adapters.spec.label} base (a LoRA for another model family?)"
            )


def lora_file(path: Path, scratch: Path) -> tuple[Path, str]:
    """(folder, file name) of the checked LoRA in the upload at `path`, under `scratch`."""
    kind = describe(path)
    if kind == "zip" or (kind == "unknown" and tarfile.is_tarfile(path)):
        return _from_archive(path, scratch)
    _check_lora(path, "the file")
    target = scratch / "lora.safetensors"  # diffusers picks its reader by the suffix
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return scratch, target.name


def _from_archive(path: Path, scratch: Path) -> tuple[Path, str]:
    folder = scratch / "archive"
    files = extract(path, folder, label=LABEL, limits=LIMITS, contents="LoRA weights")
    chosen = _manifest_lora(files) or _only_safetensors(files)
    _check_lora(chosen, chosen.name)
    return chosen.parent, chosen.name


def _manifest_lora(files: list[Path]) -> Path | None:
    manifests = sorted((f for f in files if f.name == MANIFEST_FILE), key=lambda f: len(f.parts))
    if not manifests:
        return None
    try:
        manifest = Manifest.read(manifests[0].parent)
    except ManifestError as error:
        raise UserError(f"{LABEL}: the archive's {error}") from None
    if manifest.adapter is None or not manifest.adapter.lora:
        raise UserError(
            f"{LABEL}: the archive is the trainer's {manifest.method.value} output, which holds "
            "no LoRA; give the output of a lora or pivotal training, or a LoRA .safetensors"
        )
    chosen = manifests[0].parent / manifest.adapter.lora
    if not chosen.is_file():
        raise UserError(
            f"{LABEL}: the archive lacks {manifest.adapter.lora}, which its manifest lists"
        )
    return chosen


def _only_safetensors(files: list[Path]) -> Path:
    tensors = [f for f in files if f.suffix == ".safetensors"]
    preferred = [f for f in tensors if f.name == LORA_FILE]
    if len(preferred or tensors) == 1:
        return (preferred or tensors)[0]
    if tensors:
        names = ", ".join(sorted(f.name for f in tensors)[:5])
        raise UserError(
            f"{LABEL}: the archive holds several .safetensors ({names}); put one LoRA in it"
        )
    pickles = [f.name for f in files if f.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise UserError(
            f"{LABEL}: the archive holds {pickles[0]}, a pickle, which can run code when loaded "
            "and is refused; save the LoRA as .safetensors"
        )
    raise UserError(f"{LABEL}: the archive holds no LoRA (no .safetensors file in it)")


def _check_lora(path: Path, shown: str) -> None:
    """A complete safetensors file whose tensors are LoRA weights (by their names)."""
    header = read_header(path, label=LABEL)
    if not any("lora" in key.lower() for key in header.keys):
        example = header.keys[0] if header.keys else "none"
        raise UserError(
            f"{LABEL}: {shown} holds no LoRA weights (tensors like {example!r}, none with "
            "'lora' in its name); a full checkpoint is not a LoRA"
        )
