"""/v1/trainings: create, list, get, cancel; the weights and the webhook deliveries."""

from __future__ import annotations

import base64
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from api import create, views, webhooks
from api.app import owner_of, session_of, settings_of
from api.jobs import jobs
from api.models import Delivery, DeliveryAttempt, Training, now

router = APIRouter(prefix="/v1/trainings")


def _mine(session: Session, training_id: str, owner: str) -> Training:
    t = session.get(Training, training_id)
    if t is None or t.owner != owner:  # another owner's training does not exist for you
        raise HTTPException(404, f"no training {training_id!r}")
    return t


@router.post("", status_code=201)
async def create_training(request: Request, owner: str = Depends(owner_of)):
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"detail": "the body is not JSON"}, status_code=400)
    return await _create(request, owner, body)


async def _create(request: Request, owner: str, body) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    settings = settings_of(request)

    def work() -> dict:
        from api import db

        with db.session(settings.database_url) as session:
            t = create.create(session, settings, owner, body)
            session.flush()
            shown = views.training(t)
        jobs().run_training(t.id)
        return shown

    try:
        shown = await run_in_threadpool(work)
    except create.InvalidError as error:
        return JSONResponse({"detail": error.errors}, status_code=error.status)
    return JSONResponse(shown, status_code=201, headers={"Location": shown["urls"]["get"]})


def _cursor(t: Training) -> str:
    return base64.urlsafe_b64encode(f"{t.created_at.isoformat()}|{t.id}".encode()).decode()


def _after(cursor: str):
    try:
        stamp, _, training_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        created = datetime.fromisoformat(stamp)
    except ValueError:
        raise HTTPException(422, "cursor: not a cursor from a `next` link") from None
    return or_(
        Training.created_at < created,
        and_(Training.created_at == created, Training.id < training_id),
    )


@router.get("")
def list_trainings(
    cursor: str | None = None,
    limit: int = Query(default=20, ge=1, le=100),
    owner: str = Depends(owner_of),
    session: Session = Depends(session_of),
):
    query = select(Training).where(Training.owner == owner)
    if cursor:
        query = query.where(_after(cursor))
    rows = session.scalars(
        query.order_by(Training.created_at.desc(), Training.id.desc()).limit(limit + 1)
    ).all()
    page = rows[:limit]
    following = (
        f"/v1/trainings?cursor={_cursor(page[-1])}&limit={limit}" if len(rows) > limit else None
    )
    return {"next": following, "previous": None, "results": [views.training(t) for t in page]}


@router.get("/{training_id}")
async def get_training(training_id: str, request: Request):
    """The hot path (clients poll it): one hop to a thread, one session, a cached token."""
    from starlette.concurrency import run_in_threadpool

    from api import db
    from api.app import authorized

    settings = settings_of(request)
    header = request.headers.get("authorization")

    def work() -> dict:
        with db.session(settings.database_url) as session:
            return views.training(_mine(session, training_id, authorized(session, header)))

    return await run_in_threadpool(work)


@router.post("/{training_id}/cancel")
def cancel_training(
    training_id: str, owner: str = Depends(owner_of), session: Session = Depends(session_of)
):
    t = _mine(session, training_id, owner)
    if t.status in views.TERMINAL:
        return views.training(t)
    queued = session.execute(
        update(Training)
        .where(Training.id == t.id, Training.slot.is_(None), Training.status == "starting")
        .values(status="canceled", completed_at=now(), stage="done")
    )
    session.refresh(t)
    delivery = None
    if queued.rowcount == 1:  # nobody had started it: canceled here and now
        delivery = webhooks.create(session, t, views.training(t))
    else:  # its supervisor stops the trainer's prediction within a second or two
        t.cancel_requested = True
    shown = views.training(t)
    session.commit()
    if delivery is not None:
        jobs().deliver(delivery.id)
    return shown


@router.get("/{training_id}/weights")
def download_weights(
    training_id: str,
    request: Request,
    owner: str = Depends(owner_of),
    session: Session = Depends(session_of),
):
    t = _mine(session, training_id, owner)
    path = settings_of(request).training_dir(t.id) / "output.zip"
    if not path.is_file() or not (t.metrics or {}).get("_trained"):
        raise HTTPException(404, f"training {t.id} has no weights yet (status {t.status})")
    name = f"{t.model.replace('/', '-')}-{t.id}.zip"
    return FileResponse(path, media_type="application/zip", filename=name)


@router.get("/{training_id}/webhooks")
def list_deliveries(
    training_id: str, owner: str = Depends(owner_of), session: Session = Depends(session_of)
):
    t = _mine(session, training_id, owner)
    deliveries = session.scalars(
        select(Delivery).where(Delivery.training_id == t.id).order_by(Delivery.created_at)
    ).all()
    out = []
    for d in deliveries:
        attempts = session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == d.id)
            .order_by(DeliveryAttempt.number)
        ).all()
        out.append(views.delivery(d, list(attempts)))
    return {"results": out}
