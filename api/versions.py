"""Versions in the database: recorded when pushed or built, resolved from a digest.

A version id is the manifest digest, `sha256:<64 hex>`; the bare 64 hex (the seed payload's
form) means the same. Pushed trainers and templates are public unless pushed with --owner;
model versions belong to the model's owner.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api import db
from api.models import Version
from api.settings import Settings

DIGEST = re.compile(r"^(sha256:)?([0-9a-f]{64})$")


class VersionError(ValueError):
    pass


def normalize(text: str, field: str) -> str:
    match = DIGEST.match(text.strip().lower()) if isinstance(text, str) else None
    if not match:
        raise VersionError(
            f"{field}: {str(text)[:80]!r} is not a version id; expected sha256:<64 hex> "
            "(or the 64 hex alone), as printed by script/push"
        )
    return "sha256:" + match.group(2)


def schema_of(config: dict) -> dict | None:
    raw = (config.get("config") or {}).get("Labels", {}).get("run.cog.openapi_schema")
    return json.loads(raw) if raw else None


def record_pushed(settings, digest, repository, target, config, size, owner, notes) -> None:
    labels = (config.get("config") or {}).get("Labels", {})
    db.migrate(settings.database_url)
    with db.session(settings.database_url) as session:
        exists = session.scalar(
            select(Version).where(Version.digest == digest, Version.repository == repository)
        )
        if exists:
            exists.notes = notes or exists.notes
            exists.owner = owner
            return
        session.add(
            Version(
                digest=digest,
                repository=repository,
                kind=labels.get("dreambooth.kind", "template"),
                target=target,
                owner=owner,
                notes=notes,
                openapi_schema=schema_of(config),
                size_bytes=size,
            )
        )


def visible(session: Session, digest: str, owner: str, kind: str) -> Version | None:
    """The version `digest` of `kind` that `owner` may use (its own or a public one)."""
    return session.scalar(
        select(Version)
        .where(
            Version.digest == digest,
            Version.kind == kind,
            or_(Version.owner.is_(None), Version.owner == owner),
        )
        .order_by(Version.id)
    )


def discover(settings: Settings, session: Session, digest: str, kind: str) -> Version | None:
    """A version pushed to the registry by another tool (cog push, oras): found and recorded."""
    from api.registry import Registry, RegistryError

    with Registry(settings.registry, timeout=10) as registry:
        try:
            repositories = [r for r in registry.repositories() if not r.startswith("models/")]
            for repository in repositories:
                if registry.has_manifest(repository, digest):
                    manifest, _ = registry.manifest(repository, digest)
                    config = registry.config(repository, manifest)
                    labels = (config.get("config") or {}).get("Labels", {})
                    if labels.get("dreambooth.kind", kind) != kind:
                        continue
                    version = Version(
                        digest=digest,
                        repository=repository,
                        kind=kind,
                        target=labels.get("dreambooth.target", repository.rsplit("/", 1)[-1]),
                        openapi_schema=schema_of(config),
                        size_bytes=sum(layer["size"] for layer in manifest["layers"]),
                    )
                    session.add(version)
                    session.flush()
                    return version
        except RegistryError:
            return None
    return None


def model_versions(session: Session, owner: str, model: str) -> list[Version]:
    return list(
        session.scalars(
            select(Version)
            .where(Version.kind == "model", Version.owner == owner, Version.model == model)
            .order_by(Version.created_at.desc(), Version.id.desc())
        )
    )


def select_version(digest: str, kind: str):
    return (
        select(Version).where(Version.digest == digest, Version.kind == kind).order_by(Version.id)
    )
