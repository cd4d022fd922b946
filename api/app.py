"""The HTTP API (FastAPI): trainings, models and their versions, predictions, webhook secret.

    POST /v1/trainings                         the seed's payload → a training (201)
    GET  /v1/trainings                         recent first, paginated (?cursor=…)
    GET  /v1/trainings/{id}                    status, live logs, metrics, version
    POST /v1/trainings/{id}/cancel
    GET  /v1/trainings/{id}/weights            the trainer's output.zip
    GET  /v1/trainings/{id}/webhooks           every delivery and attempt
    GET  /v1/models/{owner}/{name}             the model and its latest version
    GET  /v1/models/{owner}/{name}/versions    with notes, newest first
    POST /v1/models/{owner}/{name}/predictions run the newest (or `version`) on `input`
    GET  /v1/versions                          trainer and template versions you can use
    GET  /v1/webhooks/default/secret           the key webhooks are signed with

Every route needs `Authorization: Bearer <token>` (401 without one); what belongs to another
owner is 404.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import auth, db
from api.settings import Settings, load


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load()
    db.migrate(settings.database_url)
    from api.predictions import Pool

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.pool.close()

    app = FastAPI(title="DreamBooth trainings API", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.pool = Pool(settings)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError):
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in error.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    from api.routes_models import router as models_router
    from api.routes_trainings import router as trainings_router

    app.include_router(trainings_router)
    app.include_router(models_router)
    return app


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def session_of(request: Request) -> Iterator[Session]:
    with db.session(settings_of(request).database_url) as session:
        yield session


def owner_of(
    authorization: str | None = Header(default=None), session: Session = Depends(session_of)
) -> str:
    return authorized(session, authorization)


def authorized(session: Session, authorization: str | None) -> str:
    owner = auth.cached_owner(session, authorization)
    if owner is None:
        raise HTTPException(
            401,
            "missing or unknown API token: send `Authorization: Bearer <token>` "
            "(create one with `dreambooth token create OWNER`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return owner


def app_factory() -> FastAPI:
    """For `uvicorn --factory api.app:app_factory`."""
    return create_app()
