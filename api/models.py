"""The service's tables. Every training, model and version belongs to an owner.

The schema is created and upgraded by the Alembic migrations in api/migrations (never by
`create_all`), so a database made by an older release is brought forward in place.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def now() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database (SQLite drops the zone; Postgres keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use api.models.now()")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict] = {datetime: UTCDateTime(), dict: JSON}


class Owner(Base):
    __tablename__ = "owners"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    webhook_secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=now)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(ForeignKey("owners.name"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))  # first characters, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(default=now)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Version(Base):
    """A manifest in the registry: a trainer, a template, or a model version built by a training."""

    __tablename__ = "versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(71), index=True)
    repository: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # trainer | template | model
    target: Mapped[str] = mapped_column(String(64))  # trainer, vanilla, controlnet-canny, ...
    owner: Mapped[str | None] = mapped_column(String(64), index=True, default=None)  # None: public
    model: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    openapi_schema: Mapped[dict | None] = mapped_column(default=None)
    training_id: Mapped[str | None] = mapped_column(String(40), default=None)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=now)


class Training(Base):
    __tablename__ = "trainings"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(200))
    trainer_version: Mapped[str] = mapped_column(String(71))
    template_version: Mapped[str] = mapped_column(String(71))
    input: Mapped[dict] = mapped_column()  # as the user sent it, data URIs summarised
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_completed: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default="starting", index=True)
    stage: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    logs: Mapped[str] = mapped_column(Text, default="")  # the trainer's own logs, live
    events: Mapped[dict] = mapped_column(default=dict)  # {"stages": [...]}: the flow's timeline
    version: Mapped[str | None] = mapped_column(String(71), default=None)
    predict_time: Mapped[float | None] = mapped_column(Float, default=None)
    metrics: Mapped[dict] = mapped_column(default=dict)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    slot: Mapped[str | None] = mapped_column(String(128), default=None)  # the worker running it
    gpu: Mapped[str | None] = mapped_column(String(32), default=None)
    supervisor_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    supervisor_host: Mapped[str | None] = mapped_column(String(255), default=None)
    trainer_pid: Mapped[int | None] = mapped_column(Integer, default=None)  # its Cog server
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=now, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class Delivery(Base):
    """One webhook message; its id is sent as `webhook-id` on every attempt."""

    __tablename__ = "deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # the exact bytes signed and sent, every attempt
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=now)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=now)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=now)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Worker(Base):
    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    gpu: Mapped[str | None] = mapped_column(String(32), default=None)
    heartbeat_at: Mapped[datetime] = mapped_column(default=now)
