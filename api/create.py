"""POST /v1/trainings: check everything that can be checked before anything runs.

The payload is the seed's, unchanged: `input`, `trainer_version`, `template_version`, `model`,
`notes`, `webhook_completed`. Every problem comes back at once as a 422 naming its field.
"""

from __future__ import annotations

import base64
import difflib
import re
import secrets

from sqlalchemy.orm import Session

from api import inputs, versions
from api.auth import ensure_owner
from api.models import Training, now
from api.safe_fetch import URLRefusedError, check
from api.settings import Settings

FIELDS = ("input", "trainer_version", "template_version", "model", "notes", "webhook_completed")
REQUIRED = ("input", "trainer_version", "template_version", "model")
MODEL = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63})/([a-z0-9][a-z0-9._-]{0,99})$")


class InvalidError(Exception):
    def __init__(self, errors: list[dict], status: int = 422):
        super().__init__(errors)
        self.errors, self.status = errors, status


def _error(loc: str, msg: str, kind: str = "value_error") -> dict:
    return {"loc": ["body", loc], "msg": msg, "type": kind}


def training_id() -> str:
    """26 lowercase base32 characters, like Replicate's ids."""
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")


def _top_level(body) -> list[dict]:
    if not isinstance(body, dict):
        return [_error("body", "expected a JSON object", "type_error")]
    errors = []
    for name in body:
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(_error(name, f"unknown field {name!r}{hint}", "extra"))
    for name in REQUIRED:
        if body.get(name) in (None, ""):
            errors.append(_error(name, "field required", "value_error.missing"))
    for name in ("notes", "webhook_completed", "model"):
        if body.get(name) is not None and not isinstance(body[name], str):
            errors.append(_error(name, "expected a string", "type_error"))
    return errors


def _version(session, settings, body, field, kind, owner, errors):
    try:
        digest = versions.normalize(body[field], field)
    except versions.VersionError as error:
        errors.append(_error(field, str(error).removeprefix(f"{field}: ")))
        return None
    found = versions.visible(session, digest, owner, kind)
    if found is None:  # perhaps pushed by another tool (cog push, oras): look in the registry
        found = versions.discover(settings, session, digest, kind)
    if found is None or (found.owner not in (None, owner)):
        hint = "script/push trainer" if kind == "trainer" else "script/push TEMPLATE"
        errors.append(
            _error(field, f"no {kind} version {digest} in the registry (push one with `{hint}`)")
        )
        return None
    return found


TRAINER_FAMILIES = {"trainer": "sd15", "trainer-sdxl": "sdxl"}  # buildkit/targets.py's trainers


def _families(trainer, template) -> list[dict]:
    """A trainer and a template of different families would build a version that cannot load
    its weights: refused here, naming both (targets not ours are not checked)."""
    from core import families
    from templates.specs import TEMPLATES

    trained = TRAINER_FAMILIES.get(trainer.target)
    spec = TEMPLATES.get(template.target)
    if trained is None or spec is None or spec.family.value == trained:
        return []
    serves, trains = families.of(spec.family).label, families.of(trained).label
    return [
        _error(
            "template_version",
            f"the template {template.target!r} serves {serves} and the trainer "
            f"{trainer.target!r} trains {trains}: choose a {trains} template",
        )
    ]


def validate(session: Session, settings: Settings, owner: str, body) -> dict:
    errors = _top_level(body)
    if errors:
        raise InvalidError(errors)
    match = MODEL.match(body["model"])
    if not match:
        errors.append(
            _error("model", "expected owner/name in lowercase letters, digits, '-', '_' or '.'")
        )
    elif match.group(1) != owner:
        raise InvalidError(
            [_error("model", f"you can push only to models of {owner!r}, not {match.group(1)!r}")],
            403,
        )
    trainer = _version(session, settings, body, "trainer_version", "trainer", owner, errors)
    template = _version(session, settings, body, "template_version", "template", owner, errors)
    if body.get("webhook_completed"):
        try:
            check(
                body["webhook_completed"],
                "webhook_completed",
                settings.allow_private_urls,
                connect=False,
            )
        except URLRefusedError as error:
            errors.append(_error("webhook_completed", str(error).split(": ", 1)[1]))
    if trainer is not None and template is not None:
        errors += _families(trainer, template)
    checked = None
    if trainer is not None and trainer.openapi_schema:
        checked = inputs.validate(
            body["input"], trainer.openapi_schema, settings.allow_private_urls
        )
        errors += checked.errors
    if errors:
        raise InvalidError(errors)
    return {"trainer": trainer, "template": template, "files": checked.files if checked else {}}


def create(session: Session, settings: Settings, owner: str, body) -> Training:
    found = validate(session, settings, owner, body)
    ensure_owner(session, owner)
    t = Training(
        id=training_id(),
        owner=owner,
        model=body["model"],
        trainer_version=found["trainer"].digest,
        template_version=found["template"].digest,
        input=inputs.summarised(body["input"]),
        notes=body.get("notes"),
        webhook_completed=body.get("webhook_completed"),
        enqueued_at=now(),
    )
    folder = settings.training_dir(t.id) / "inputs"
    for name, value in found["files"].items():
        if value.startswith("data:"):  # received bytes: kept here, handed to the trainer later
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(base64.b64decode(value.partition(",")[2]))
    session.add(t)
    return t
