"""What identifies a set of weights: for caches, run ids, and a template checking that an adapter
was trained on its own base (manifest.json records the base's fingerprint).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint_dir(directory: Path) -> str:
    """Identity of a weights folder from its configs and safetensors headers (not the weights).

    Cheap enough to compute on every run, and changes whenever a file is replaced.
    """
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        digest.update(str(path.relative_to(directory)).encode())
        stat = path.stat()
        digest.update(str(stat.st_size).encode())
        with path.open("rb") as stream:
            digest.update(stream.read(64 * 1024))
    return digest.hexdigest()[:16]


def fingerprint_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
