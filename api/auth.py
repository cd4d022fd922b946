"""Bearer tokens: shown once when created, stored only as their SHA-256.

Tokens are 256 random bits, so a fast hash is enough (nothing to brute-force); the database
never holds one that could be replayed. No token is a 401; another owner's objects are 404.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.models import Owner, Token, now

PREFIX = "dbt_"
OWNER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def ensure_owner(session: Session, name: str) -> Owner:
    if not OWNER_NAME.match(name):
        raise ValueError(
            f"owner {name!r}: use lowercase letters, digits, '-' and '_' (at most 64), "
            "starting with a letter or digit"
        )
    owner = session.get(Owner, name)
    if owner is None:
        owner = Owner(name=name, webhook_secret=new_webhook_secret())
        session.add(owner)
        session.flush()
    return owner


def create_token(session: Session, owner: str) -> str:
    ensure_owner(session, owner)
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(Token(owner=owner, token_hash=digest(token), hint=token[:8]))
    return token


_CACHE: dict[str, tuple[str, float]] = {}
CACHE_SECONDS = 30.0


def cached_owner(session: Session, authorization: str | None) -> str | None:
    """owner_of, remembered for CACHE_SECONDS per token (pollers ask many times a second)."""
    key = digest(authorization or "")
    hit = _CACHE.get(key)
    if hit and hit[1] > time.monotonic():
        return hit[0]
    owner = owner_of(session, authorization)
    if owner is not None:
        if len(_CACHE) > 10_000:
            _CACHE.clear()
        _CACHE[key] = (owner, time.monotonic() + CACHE_SECONDS)
    return owner


def owner_of(session: Session, authorization: str | None) -> str | None:
    """The owner a `Bearer <token>` (or `Token <token>`, Replicate's older form) belongs to."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token:
        return None
    row = session.scalar(select(Token).where(Token.token_hash == digest(token.strip())))
    if row is None:
        return None
    if row.last_used_at is None or (now() - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now()
    return row.owner
