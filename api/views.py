"""How a training, a version and a delivery look over the API and in webhooks.

The training object has the seed's fields (created_at, error, id, input, logs,
metrics.predict_time, model, notes, status, version, webhook_completed) plus what a user of a
self-hosted service wants: the versions used, the stage it is in with a timeline, and URLs.
"""

from __future__ import annotations

from datetime import datetime

from api.models import Delivery, DeliveryAttempt, Training, Version

TERMINAL = ("succeeded", "failed", "canceled")


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def training(t: Training) -> dict:
    metrics = {k: v for k, v in (t.metrics or {}).items() if not k.startswith("_")}
    if t.predict_time is not None:
        metrics["predict_time"] = t.predict_time
    return {
        "id": t.id,
        "model": t.model,
        "version": t.version,
        "status": t.status,
        "stage": t.stage,
        "input": t.input,
        "logs": t.logs or None,
        "error": t.error,
        "metrics": metrics,
        "notes": t.notes,
        "webhook_completed": t.webhook_completed,
        "trainer_version": t.trainer_version,
        "template_version": t.template_version,
        "created_at": iso(t.created_at),
        "started_at": iso(t.started_at),
        "completed_at": iso(t.completed_at),
        "stages": (t.events or {}).get("stages", []),
        "urls": {
            "get": f"/v1/trainings/{t.id}",
            "cancel": f"/v1/trainings/{t.id}/cancel",
            "weights": f"/v1/trainings/{t.id}/weights",
            "webhooks": f"/v1/trainings/{t.id}/webhooks",
        },
    }


def version(v: Version) -> dict:
    return {
        "id": v.digest,
        "model": v.model,
        "kind": v.kind,
        "target": v.target,
        "created_at": iso(v.created_at),
        "notes": v.notes,
        "training_id": v.training_id,
        "size_bytes": v.size_bytes,
        "image": f"{v.repository}@{v.digest}",
        "openapi_schema": v.openapi_schema,
    }


def delivery(d: Delivery, attempts: list[DeliveryAttempt]) -> dict:
    return {
        "id": d.id,
        "url": d.url,
        "status": d.status,
        "attempts": [
            {
                "number": a.number,
                "at": iso(a.at),
                "status_code": a.status_code,
                "error": a.error,
                "seconds": a.seconds,
            }
            for a in attempts
        ],
        "next_attempt_at": iso(d.next_attempt_at),
        "delivered_at": iso(d.delivered_at),
        "created_at": iso(d.created_at),
    }
