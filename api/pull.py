"""Pull a version from the registry into a directory, to serve it with `script/serve --context`.

Each version is unpacked once, under `$DREAMBOOTH_HOME/versions/<hex>/`, with tarfile's `data`
filter: no absolute paths, no `..`, no links out, no device files. A lock makes concurrent pulls
of the same version wait for the first one.
"""

from __future__ import annotations

import fcntl
import io
import shutil
import tarfile
from pathlib import Path

from api.oci import TAR, TAR_GZIP
from api.registry import Registry, RegistryError

DOCKER_LAYERS = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": TAR_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": TAR,
}


class _Chunks(io.RawIOBase):
    """A readable file over an iterator of byte chunks (a streamed HTTP body)."""

    def __init__(self, chunks):
        self.chunks, self.buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            try:
                self.buffer = next(self.chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self.buffer))
        target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
        return size


def _extract(registry: Registry, repository: str, layer: dict, into: Path) -> None:
    media_type = DOCKER_LAYERS.get(layer["mediaType"], layer["mediaType"])
    if media_type not in (TAR, TAR_GZIP):
        raise RegistryError(f"layer {layer['digest']} has unsupported type {media_type}")
    with registry.stream_blob(repository, layer["digest"]) as response:
        if response.status_code != 200:
            raise RegistryError(f"layer {layer['digest']} of {repository}: {response.status_code}")
        raw = io.BufferedReader(_Chunks(response.iter_raw(1024 * 1024)), 1024 * 1024)
        mode = "r|gz" if media_type == TAR_GZIP else "r|"
        with tarfile.open(fileobj=raw, mode=mode) as archive:
            archive.extractall(into, filter="data")


def pull(registry: Registry, repository: str, digest: str, root: Path) -> Path:
    """The version's /src, unpacked (once) under `root`; returns that src directory."""
    folder = Path(root) / digest.removeprefix("sha256:")
    done = folder / "rootfs" / "src"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "complete").exists():
            return done
        partial = folder / "partial"
        shutil.rmtree(partial, ignore_errors=True)
        manifest, _ = registry.manifest(repository, digest)
        for layer in manifest["layers"]:
            _extract(registry, repository, layer, partial)
        shutil.rmtree(folder / "rootfs", ignore_errors=True)
        partial.replace(folder / "rootfs")
        (folder / "complete").touch()
    if not (done / "cog.yaml").is_file():
        raise RegistryError(f"version {digest} has no /src/cog.yaml: not a Cog model")
    return done
