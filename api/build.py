"""Build: the trained weights as one layer at /src/weights on top of a template version.

This is `FROM template@sha256:… + COPY weights /src/weights`, done at the registry level: the
template's layers are mounted into the model's repository (no bytes move), the members of
output.zip are streamed once into a plain tar layer (safetensors are stored, not recompressed),
and a manifest over both is tagged as a new version of the model.

Where Docker or the cog CLI is installed, `docker_build` does the same step the Docker way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
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


def build_version(
    registry: Registry,
    template_repository: str,
    template_digest: str,
    weights_zip: Path,
    model: str,
    tag: str,
    labels: dict[str, str],
) -> Built:
    repository = model_repository(model)
    manifest, _ = registry.manifest(template_repository, template_digest)
    config = registry.config(template_repository, manifest)
    for layer in manifest["layers"]:
        registry.mount(repository, layer["digest"], template_repository)
    with zipfile.ZipFile(weights_zip) as archive:
        if "model_index.json" not in archive.namelist():
            raise ValueError(
                "the trainer's output.zip has no model_index.json at its top: it is not the "
                "diffusers layout templates load from /src/weights"
            )
        blob = registry.upload(repository, oci.tar_stream(oci.zip_entries(archive, "src/weights")))
    config["created"] = oci.now()
    config["rootfs"]["diff_ids"].append(blob.digest)
    config.setdefault("history", []).append({"created_by": "COPY weights /src/weights"})
    config_labels = config.setdefault("config", {}).setdefault("Labels", {})
    config_labels.update({"dreambooth.kind": "model", **labels})
    config_blob = registry.upload_bytes(
        repository, json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    )
    layers = [*manifest["layers"], oci.descriptor(oci.TAR, blob.digest, blob.size)]
    new = oci.manifest(oci.descriptor(oci.CONFIG, config_blob.digest, config_blob.size), layers)
    digest = registry.put_manifest(repository, tag, new)
    registry.put_manifest(repository, "latest", new)
    schema_label = config_labels.get("run.cog.openapi_schema")
    schema = json.loads(schema_label) if schema_label else None
    return Built(digest, repository, tag, blob.size, schema)


def dockerfile(template_image: str) -> str:
    """The seed's build step; the same text as `script/build-template --dockerfile`."""
    return f"FROM {template_image}\nCOPY weights /src/weights\n"


def docker_build_version(
    registry: Registry,
    template_repository: str,
    template_digest: str,
    weights_zip: Path,
    model: str,
    tag: str,
    workdir: Path,
    schema: dict | None,
) -> Built:
    """The same step with Docker (DREAMBOOTH_BUILDER=docker): needs a Docker engine that can
    push to the registry (for a local http one, list it in the engine's insecure-registries)."""
    host = httpx.URL(registry.url).netloc.decode()
    repository = model_repository(model)
    template_image = f"{host}/{template_repository}@{template_digest}"
    docker_build(template_image, weights_zip, f"{host}/{repository}:{tag}", workdir)
    _, digest = registry.manifest(repository, tag)
    return Built(digest, repository, tag, Path(weights_zip).stat().st_size, schema)


def docker_build(template_image: str, weights_zip: Path, image: str, workdir: Path) -> None:
    """Build and push with Docker where it is installed (documented; not run by the tests)."""
    if shutil.which("docker") is None:
        raise RuntimeError("docker is not installed; the registry-level build needs nothing")
    context = Path(workdir) / "docker-build"
    shutil.rmtree(context, ignore_errors=True)
    (context / "weights").mkdir(parents=True)
    with zipfile.ZipFile(weights_zip) as archive:
        archive.extractall(context / "weights")
    (context / "Dockerfile").write_text(dockerfile(template_image))
    subprocess.run(["docker", "build", "-t", image, str(context)], check=True)
    subprocess.run(["docker", "push", image], check=True)
