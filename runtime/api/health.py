"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint

from runtime import outbox, receipts
from runtime.api.services import services
from runtime.db import utcnow

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz():
    """Ready when the database answers; reports the outbox backlog and the forwarded
    submissions GCP has not confirmed yet (a 503 when the database doesn't answer)."""
    now = utcnow()
    with services().engine.begin() as connection:
        backlog, oldest_age = outbox.stats(connection, now)
        unconfirmed, oldest_unconfirmed = receipts.unconfirmed(connection, now)
    return {
        "status": "ready",
        "database": "ok",
        "outbox": {"pending": backlog, "oldest_pending_age_seconds": round(oldest_age, 3)},
        "receipts": {
            "unconfirmed": unconfirmed,
            "unconfirmed_capped": unconfirmed >= receipts.UNCONFIRMED_CAP,
            "oldest_unconfirmed_age_seconds": round(oldest_unconfirmed, 3),
        },
    }
