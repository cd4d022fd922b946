"""/v1/models/{owner}/{name}: the model, its versions, predictions; /v1/versions; the secret."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api import inputs, safe_fetch, versions, views
from api.app import owner_of, session_of, settings_of
from api.models import Owner, Version

router = APIRouter(prefix="/v1")


def _versions(session: Session, owner: str, name: str, who: str) -> list[Version]:
    found = versions.model_versions(session, owner, f"{owner}/{name}") if owner == who else []
    if not found:
        raise HTTPException(404, f"no model {owner}/{name}")
    return found


@router.get("/models/{owner}/{name}")
def get_model(
    owner: str, name: str, who: str = Depends(owner_of), session: Session = Depends(session_of)
):
    found = _versions(session, owner, name, who)
    return {"owner": owner, "name": name, "latest_version": views.version(found[0])}


@router.get("/models/{owner}/{name}/versions")
def list_versions(
    owner: str, name: str, who: str = Depends(owner_of), session: Session = Depends(session_of)
):
    found = _versions(session, owner, name, who)
    return {"next": None, "previous": None, "results": [views.version(v) for v in found]}


def _file_inputs(values: dict, schema: dict, settings) -> dict:
    """URLs of file inputs fetched here (SSRF-safe) and handed on as bytes, never as URLs."""
    out = dict(values)
    for name in inputs.file_fields(schema) & set(values):
        value = values[name]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            with tempfile.TemporaryDirectory(dir=settings.home) as scratch:
                path = Path(scratch) / "file"
                safe_fetch.fetch(
                    value,
                    path,
                    f"input.{name}",
                    settings.allow_private_urls,
                    settings.max_fetch_bytes,
                    settings.fetch_timeout,
                )
                out[name] = (
                    "data:application/octet-stream;base64,"
                    + base64.b64encode(path.read_bytes()).decode()
                )
    return out


@router.post("/models/{owner}/{name}/predictions")
def predict(
    owner: str,
    name: str,
    request: Request,
    body: dict = Body(...),
    who: str = Depends(owner_of),
    session: Session = Depends(session_of),
):
    found = _versions(session, owner, name, who)
    chosen = found[0]
    if body.get("version"):
        try:
            wanted = versions.normalize(body["version"], "version")
        except versions.VersionError as error:
            return JSONResponse({"detail": [{"loc": ["body", "version"], "msg": str(error)}]}, 422)
        chosen = next((v for v in found if v.digest == wanted), None)
        if chosen is None:
            raise HTTPException(404, f"model {owner}/{name} has no version {wanted}")
    values = body.get("input") or {}
    settings = settings_of(request)
    if chosen.openapi_schema:
        checked = inputs.validate(values, chosen.openapi_schema, settings.allow_private_urls)
        if checked.errors:
            return JSONResponse({"detail": checked.errors}, status_code=422)
        try:
            values = _file_inputs(values, chosen.openapi_schema, settings)
        except safe_fetch.URLRefusedError as error:
            return JSONResponse({"detail": [{"loc": ["body", "input"], "msg": str(error)}]}, 422)
    session.close()  # a generation can take a while; hold no database connection meanwhile
    status, result = request.app.state.pool.predict(chosen.repository, chosen.digest, values)
    if status == 422:
        return JSONResponse(result, status_code=422)
    return {"model": f"{owner}/{name}", "version": chosen.digest, **result}


@router.get("/versions")
def list_public_versions(who: str = Depends(owner_of), session: Session = Depends(session_of)):
    rows = session.scalars(
        select(Version)
        .where(Version.kind != "model", or_(Version.owner.is_(None), Version.owner == who))
        .order_by(Version.created_at.desc())
    ).all()
    return {"results": [{**views.version(v), "openapi_schema": None} for v in rows]}


@router.get("/webhooks/default/secret")
def webhook_secret(who: str = Depends(owner_of), session: Session = Depends(session_of)):
    from api.auth import ensure_owner

    owner: Owner = ensure_owner(session, who)
    return {"key": owner.webhook_secret}
