"""`script/push trainer|TEMPLATE`: store a built Cog context in the registry as an OCI image.

The image holds what `cog build` puts under /src: one gzip layer of code (with cog.yaml and
`.cog/openapi_schema.json`) and one plain tar layer per weights folder (safetensors do not
compress, so they are stored as they are). Its config carries the labels Cog's own images carry
(`run.cog.config`, `run.cog.openapi_schema`), which is where the API reads the trainer's input
schema from. The manifest digest, printed on stdout, is the version id.

Python, CUDA and the pinned packages are the image's base layers under `cog build`; here the
version is served with this repository's environment (see api/pull.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from api import oci
from api.registry import Registry
from api.settings import Settings, load

WEIGHT_FOLDERS = ("base-weights", "template-weights", "weights")
COG_VERSION = "0.23.1"


def repository_for(target: str) -> str:
    return f"cog/{target}"


def kind_of(target_name: str) -> str:
    from buildkit import targets

    return "trainer" if target_name in targets.TRAINERS else "template"


def trainer_context(out: Path, base_weights: Path | None, name: str = "trainer") -> Path:
    """A trainer's context (`trainer` or `trainer-sdxl`): what `cog build` at the repository
    root would copy with its cog.yaml, less tools."""
    from buildkit import schema, targets

    target = targets.TRAINERS[name]()
    for folder in ("core", "trainer"):
        shutil.copytree(targets.REPO_ROOT / folder, out / folder, ignore=_ignore)
    (out / "requirements").mkdir()
    shutil.copy2(targets.REPO_ROOT / "requirements/cog.txt", out / "requirements/cog.txt")
    (out / "cog.yaml").write_text(target.cog_yaml())
    if base_weights is not None:
        if not (base_weights / "model_index.json").is_file():
            raise SystemExit(
                f"push: {base_weights} is not a diffusers folder (no model_index.json); run "
                "`script/download-weights base` or `script/make-tiny-weights base-weights`"
            )
        shutil.copytree(base_weights, out / "base-weights", ignore=_ignore)
    schema.write(out, target.run, target.train)
    return out


def _ignore(directory, names):
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


def _code_layer(registry: Registry, repository: str, context: Path) -> tuple[dict, str]:
    def is_weights(relative: Path) -> bool:
        return relative.parts[0] in WEIGHT_FOLDERS or relative.name.endswith(".pyc")

    entries = oci.directory_entries(context, "src", skip=is_weights)
    plain = oci.Digests(oci.tar_stream(entries))
    blob = registry.upload(repository, oci.gzip_stream(iter(plain)))
    return oci.descriptor(oci.TAR_GZIP, blob.digest, blob.size), plain.digest


def _weights_layer(registry: Registry, repository: str, folder: Path) -> tuple[dict, str]:
    entries = oci.directory_entries(folder, f"src/{folder.name}")
    blob = registry.upload(repository, oci.tar_stream(entries))
    return oci.descriptor(oci.TAR, blob.digest, blob.size), blob.digest


def image_of(context: Path) -> tuple[dict, dict]:
    """(env, labels) of the image `cog build` would make from `context`."""
    from buildkit import targets

    target = targets.from_cog_yaml(context / "cog.yaml")
    env = {"COG_PREDICT_TYPE_STUB": target.run, **target.environment}
    if target.train:
        env["COG_TRAIN_TYPE_STUB"] = target.train
    schema_path = context / ".cog" / "openapi_schema.json"
    if not schema_path.is_file():
        raise SystemExit(f"push: {context} has no .cog/openapi_schema.json; build it first")
    labels = {
        "run.cog.version": COG_VERSION,
        "run.cog.config": json.dumps(_yaml(context / "cog.yaml"), sort_keys=True),
        "run.cog.openapi_schema": schema_path.read_text(),
        "org.opencontainers.image.title": target.name,
        "dreambooth.kind": kind_of(target.name),
        "dreambooth.target": target.name,
    }
    return env, labels


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def push_context(registry: Registry, context: Path, repository: str) -> tuple[str, dict, int]:
    """Upload `context` as an image in `repository`; returns (digest, config, size)."""
    env, labels = image_of(context)
    layers, diff_ids, history = [], [], []
    descriptor, diff_id = _code_layer(registry, repository, context)
    layers.append(descriptor)
    diff_ids.append(diff_id)
    history.append({"created_by": "COPY . /src # code, cog.yaml, .cog/openapi_schema.json"})
    for name in WEIGHT_FOLDERS:
        folder = context / name
        if folder.is_dir() and any(folder.iterdir()):
            descriptor, diff_id = _weights_layer(registry, repository, folder)
            layers.append(descriptor)
            diff_ids.append(diff_id)
            history.append({"created_by": f"COPY {name} /src/{name}"})
    config = oci.image_config(env, labels, diff_ids, history)
    config_blob = registry.upload_bytes(
        repository, json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    )
    config_descriptor = oci.descriptor(oci.CONFIG, config_blob.digest, config_blob.size)
    manifest = oci.manifest(config_descriptor, layers)
    digest = registry.put_manifest(repository, "latest", manifest)
    return digest, config, sum(layer["size"] for layer in layers)


def push(
    settings: Settings,
    target: str,
    context: Path,
    owner: str | None,
    notes: str | None,
    repository: str | None = None,
) -> str:
    from api import registry_server, versions

    repository = repository or repository_for(target)
    local = registry_server.ensure(settings)
    try:
        with Registry(settings.registry) as registry:
            digest, config, size = push_context(registry, context, repository)
    finally:
        if local:
            local.stop()
    versions.record_pushed(settings, digest, repository, target, config, size, owner, notes)
    return digest


def main(argv: list[str] | None = None) -> None:
    from buildkit import build_template, targets

    parser = argparse.ArgumentParser(prog="script/push", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="trainer, trainer-sdxl, or a template name")
    parser.add_argument("--context", type=Path, help="push this built context as it is")
    parser.add_argument("--base-weights", type=Path, default=Path("base-weights"))
    parser.add_argument("--template-weights", type=Path, default=Path("template-weights"))
    parser.add_argument("--owner", help="private to this owner (default: public to every token)")
    parser.add_argument("--notes", help="notes shown with the version")
    parser.add_argument("--repository", help="registry repository (default: cog/TARGET)")
    args = parser.parse_args(argv)
    targets.get(args.target)  # a clear error for an unknown target
    settings = load()
    with tempfile.TemporaryDirectory(dir=_scratch(settings)) as scratch:
        context = args.context
        if context is None and args.target in targets.TRAINERS:
            context = trainer_context(
                Path(scratch) / "ctx", args.base_weights.resolve(), args.target
            )
        elif context is None:
            context = build_template.build(
                args.target, Path(scratch) / "ctx", None, args.template_weights.resolve()
            )
        repository = args.repository or repository_for(args.target)
        digest = push(settings, args.target, Path(context), args.owner, args.notes, repository)
    where = f"{settings.registry}/{repository}"
    print(f"pushed {args.target} to {where}", file=sys.stderr)
    print(digest)


def _scratch(settings: Settings) -> Path:
    path = settings.home / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    main()
