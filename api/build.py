"""Build: the trained weights as one layer at /src/weights on top of a template version.

This is `FROM template@sha256:… + COPY weights /src/weights`, done at the registry level: the
template's layers are mounted into the model's repository (no bytes move), the members of
output.zip are streamed once into a plain tar layer (safetensors are stored, not recompressed),
and a manifest over both is tagged as a new version of the model.

An adapter output (lora, textual_inversion, pivotal, and the SDXL trainer's trained_model.tar)
holds no base: the trainer version's own `/src/base-weights` layer, the base it trained on, is
mounted too (again no bytes move), where the template loads the base of an adapter from.

Where Docker or the cog CLI is installed, `docker_build` does the same step the Docker way.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from api import oci
from api.registry import Registry


@dataclass(frozen=True)
class Built:
    digest: str
    repository: str
    tag: str
    weights_bytes: int
    schema: dict | None


def model_repository(model: str) -> str:
    return f"models/{model}"


BASE_LAYER = "COPY base-weights /src/base-weights"  # api/push.py's history line for it


def build_version(
    registry: Registry,
    template_repository: str,
    template_digest: str,
    weights_zip: Path,
    model: str,
    tag: str,
    labels: dict[str, str],
    trainer: tuple[str, str] | None = None,
) -> Built:
    """`trainer` = (repository, digest) of the trainer version: where an adapter's base is."""
    repository = model_repository(model)
    manifest, _ = registry.manifest(template_repository, template_digest)
    config = registry.config(template_repository, manifest)
    for layer in manifest["layers"]:
        registry.mount(repository, layer["digest"], template_repository)
    layers = list(manifest["layers"])
    with tempfile.TemporaryDirectory(prefix="build-") as scratch, contextlib.ExitStack() as stack:
        entries, adapter = _weights_entries(Path(weights_zip), Path(scratch), stack)
        blob = registry.upload(repository, oci.tar_stream(entries))
    config["created"] = oci.now()
    config["rootfs"]["diff_ids"].append(blob.digest)
    config.setdefault("history", []).append({"created_by": "COPY weights /src/weights"})
    layers.append(oci.descriptor(oci.TAR, blob.digest, blob.size))
    if adapter:
        base, diff_id = _base_layer(registry, repository, trainer)
        layers.append(base)
        config["rootfs"]["diff_ids"].append(diff_id)
        config["history"].append({"created_by": f"{BASE_LAYER} # the trainer's base"})
    config_labels = config.setdefault("config", {}).setdefault("Labels", {})
    config_labels.update({"dreambooth.kind": "model", **labels})
    config_blob = registry.upload_bytes(
        repository, json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    )
    new = oci.manifest(oci.descriptor(oci.CONFIG, config_blob.digest, config_blob.size), layers)
    digest = registry.put_manifest(repository, tag, new)
    registry.put_manifest(repository, "latest", new)
    schema_label = config_labels.get("run.cog.openapi_schema")
    schema = json.loads(schema_label) if schema_label else None
    return Built(digest, repository, tag, blob.size, schema)


def _weights_entries(
    output: Path, scratch: Path, stack: contextlib.ExitStack
) -> tuple[list[oci.Entry], bool]:
    """The trainer's output as the /src/weights layer's entries, and whether it is an adapter.

    output.zip is streamed from its members (the zip stays open in `stack` until they are
    read); a tar (the SDXL trainer's) is unpacked first, with the same bounds as any upload.
    """
    if zipfile.is_zipfile(output):
        archive = stack.enter_context(zipfile.ZipFile(output))
        return oci.zip_entries(archive, "src/weights"), _is_adapter(set(archive.namelist()))
    adapter = _unpack(output, scratch / "weights")
    return oci.directory_entries(scratch / "weights", "src/weights"), adapter


def _unpack(output: Path, folder: Path) -> bool:
    """The trainer's output unpacked into `folder`; whether it is an adapter."""
    if zipfile.is_zipfile(output):
        with zipfile.ZipFile(output) as archive:
            archive.extractall(folder)
            return _is_adapter(set(archive.namelist()))
    if not tarfile.is_tarfile(output):
        raise ValueError("the trainer's output is neither a zip nor a tar")
    from core.archive import ArchiveLimits, extract

    limits = ArchiveLimits(max_total_bytes=64 * 2**30, max_member_bytes=32 * 2**30)
    files = extract(output, folder, label="the trainer's output", limits=limits)
    return _is_adapter({f.relative_to(folder).as_posix() for f in files})


def _is_adapter(names: set[str]) -> bool:
    """A whole pipeline (model_index.json) or an adapter that loads on a base (manifest.json)."""
    if "model_index.json" in names:
        return False
    if "manifest.json" in names:
        return True
    raise ValueError(
        "the trainer's output has neither model_index.json nor manifest.json at its top: it is "
        "not what templates load from /src/weights"
    )


def _base_layer(registry: Registry, repository: str, trainer: tuple[str, str] | None):
    """(descriptor, diff_id) of the trainer version's base-weights layer, mounted here."""
    if trainer is None:
        raise ValueError("an adapter output needs its base, and no trainer version was given")
    trainer_repository, trainer_digest = trainer
    manifest, _ = registry.manifest(trainer_repository, trainer_digest)
    config = registry.config(trainer_repository, manifest)
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    for index, entry in enumerate(history):
        if entry.get("created_by", "").startswith(BASE_LAYER):
            layer = manifest["layers"][index]
            registry.mount(repository, layer["digest"], trainer_repository)
            return layer, config["rootfs"]["diff_ids"][index]
    raise ValueError(
        "the output is an adapter (it loads on top of its base), and the trainer version has "
        "no /src/base-weights layer to take the base from; push the trainer with --base-weights"
    )


def dockerfile(template_image: str, trainer_image: str | None = None) -> str:
    """The seed's build step; the same text as `script/build-template --dockerfile`. With
    `trainer_image` (an adapter output), the base comes from the trainer's image."""
    base = f"COPY --from={trainer_image} /src/base-weights /src/base-weights\n"
    return f"FROM {template_image}\nCOPY weights /src/weights\n" + (base if trainer_image else "")


def docker_build_version(
    registry: Registry,
    template_repository: str,
    template_digest: str,
    weights_zip: Path,
    model: str,
    tag: str,
    workdir: Path,
    schema: dict | None,
    trainer: tuple[str, str] | None = None,
) -> Built:
    """The same step with Docker (DREAMBOOTH_BUILDER=docker): needs a Docker engine that can
    push to the registry (for a local http one, list it in the engine's insecure-registries)."""
    host = httpx.URL(registry.url).netloc.decode()
    repository = model_repository(model)
    template_image = f"{host}/{template_repository}@{template_digest}"
    trainer_image = f"{host}/{trainer[0]}@{trainer[1]}" if trainer else None
    image = f"{host}/{repository}:{tag}"
    docker_build(template_image, weights_zip, image, workdir, trainer_image)
    _, digest = registry.manifest(repository, tag)
    return Built(digest, repository, tag, Path(weights_zip).stat().st_size, schema)


def docker_build(
    template_image: str,
    weights_zip: Path,
    image: str,
    workdir: Path,
    trainer_image: str | None = None,
) -> None:
    """Build and push with Docker where it is installed (documented; not run by the tests)."""
    if shutil.which("docker") is None:
        raise RuntimeError("docker is not installed; the registry-level build needs nothing")
    context = Path(workdir) / "docker-build"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    adapter = _unpack(Path(weights_zip), context / "weights")
    base = trainer_image if adapter else None
    (context / "Dockerfile").write_text(dockerfile(template_image, base))
    subprocess.run(["docker", "build", "-t", image, str(context)], check=True)
    subprocess.run(["docker", "push", image], check=True)
