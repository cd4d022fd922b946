"""`webhook_completed`: the training object, signed with Standard Webhooks, retried with backoff.

The body is fixed when the training ends and sent byte for byte on every attempt, with the same
`webhook-id`, so receivers can deduplicate; `webhook-timestamp` and `webhook-signature` are made
fresh for each attempt (the `standardwebhooks` package signs, with the owner's secret from
`GET /v1/webhooks/default/secret`). Each attempt is recorded. Redirects are not followed and
the address is checked like any user URL.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timedelta, timezone

import httpx
from standardwebhooks.webhooks import Webhook

from api import db
from api.models import Delivery, DeliveryAttempt, Owner, Training, now
from api.safe_fetch import URLRefusedError, check, pinned_request
from api.settings import Settings

MAX_DELAY = 3600.0


def message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def create(session, training: Training, payload: dict) -> Delivery | None:
    if not training.webhook_completed:
        return None
    delivery = Delivery(
        id=message_id(),
        training_id=training.id,
        url=training.webhook_completed,
        body=json.dumps(payload, separators=(",", ":")),
    )
    session.add(delivery)
    return delivery


def headers(secret: str, msg_id: str, body: str, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(timezone.utc)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }


def delay(settings: Settings, attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: backoff doubling from DREAMBOOTH_WEBHOOK_BACKOFF."""
    return min(MAX_DELAY, settings.webhook_backoff * 2 ** (attempt - 1))


def _send(settings: Settings, delivery: Delivery, secret: str) -> tuple[int | None, str | None]:
    try:
        host, _port, address = check(delivery.url, "webhook_completed", settings.allow_private_urls)
    except URLRefusedError as error:
        return None, str(error)
    request = pinned_request("POST", delivery.url, address, host)
    request.headers.update(headers(secret, delivery.id, delivery.body))
    request.stream = httpx.ByteStream(delivery.body.encode())
    request.headers["content-length"] = str(len(delivery.body.encode()))
    try:
        with httpx.Client(timeout=settings.webhook_timeout) as client:
            response = client.send(request)
    except httpx.TransportError as error:
        return None, f"{type(error).__name__}: {error}"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"


def attempt(settings: Settings, delivery_id: str) -> float | None:
    """One attempt; returns the delay before the next, or None when there is none to make."""
    with db.session(settings.database_url) as session:
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.status != "pending":
            return None
        training = session.get(Training, delivery.training_id)
        secret = session.get(Owner, training.owner).webhook_secret
        started = time.monotonic()
        code, error = _send(settings, delivery, secret)
        delivery.attempts += 1
        session.add(
            DeliveryAttempt(
                delivery_id=delivery.id,
                number=delivery.attempts,
                status_code=code,
                error=error,
                seconds=round(time.monotonic() - started, 3),
            )
        )
        delivery.last_error = error
        if error is None:
            delivery.status, delivery.delivered_at = "delivered", now()
            delivery.next_attempt_at = None
            return None
        if delivery.attempts >= settings.webhook_attempts:
            delivery.status, delivery.next_attempt_at = "failed", None
            return None
        wait = delay(settings, delivery.attempts)
        delivery.next_attempt_at = now() + timedelta(seconds=wait)
        return wait
