"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint

from runtime import outbox
from runtime.api.services import services
from runtime.db import utcnow

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz():
    """Ready when the database answers; reports the outbox backlog (a 503 when it doesn't)."""
    with services().engine.begin() as connection:
        backlog, oldest_age = outbox.stats(connection, utcnow())
    return {
        "status": "ready",
        "database": "ok",
        "outbox": {"pending": backlog, "oldest_pending_age_seconds": round(oldest_age, 3)},
    }
