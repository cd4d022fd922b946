"""The real CLIP BPE vocabulary, offline.

No model hub is reachable from our machines, but the vocabulary that every Stable Diffusion
tokenizer uses (`bpe_simple_vocab_16e6.txt.gz`, 1.4 MB) ships inside the open_clip_torch wheel
on PyPI. `make` fetches that wheel once (without installing it) and keeps the file under
`.cache/clip/`; `clip_tokenizer()` turns it into a `CLIPTokenizer` that gives the same ids as
`openai/clip-vit-large-patch14` ("a photo of sks dog" -> 49406 320 1125 539 48136 1929 49407).

    python -m buildkit.clip_vocab fetch      # download the wheel and extract the vocabulary
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VOCAB_NAME = "bpe_simple_vocab_16e6.txt.gz"
DEFAULT_VOCAB = REPO_ROOT / ".cache" / "clip" / VOCAB_NAME
WHEEL_SPEC = "open-clip-torch==3.3.0"
N_MERGES = 49152 - 256 - 2  # as in CLIP's SimpleTokenizer


class VocabMissingError(RuntimeError):
    pass


def vocab_path() -> Path:
    """Where the vocabulary is: $CLIP_BPE_VOCAB, then .cache/clip/, then an installed open_clip."""
    candidates = [os.environ.get("CLIP_BPE_VOCAB"), str(DEFAULT_VOCAB)]
    try:
        import open_clip  # optional: used only when installed

        candidates.append(str(Path(open_clip.__file__).parent / VOCAB_NAME))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise VocabMissingError(
        f"The CLIP BPE vocabulary ({VOCAB_NAME}) was not found at {DEFAULT_VOCAB}. "
        "Run `make install` (or `python -m buildkit.clip_vocab fetch`), "
        "or point CLIP_BPE_VOCAB at the file."
    )


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable-character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


@lru_cache(maxsize=1)
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    with gzip.open(vocab_path()) as stream:
        lines = stream.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer(model_max_length: int = 77):
    """A `CLIPTokenizer` identical in ids to the one Stable Diffusion ships."""
    from transformers import CLIPTokenizer

    vocab, merges = vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


def fetch(destination: Path = DEFAULT_VOCAB) -> Path:
    """Download the open_clip_torch wheel (no install, no dependencies) and extract the vocab."""
    if destination.is_file():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL_SPEC, "-d", tmp],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(f"open_clip/{VOCAB_NAME}")
    partial = destination.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(destination)
    return destination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["fetch", "path"])
    args = parser.parse_args()
    print(fetch() if args.command == "fetch" else vocab_path())


if __name__ == "__main__":
    main()
