"""Liveness and readiness.

`/livez` (and `/healthz`, its older name) answers as long as the process serves requests:
the load balancer and the Auto Scaling group judge instances by it, so a database failover
never makes them replace the fleet. `/readyz` also asks the database, with bounded queries
only (a health check must not scan a growing outbox); the boot waits for it.
"""

from __future__ import annotations

from flask import Blueprint

from runtime import outbox, receipts
from runtime.api.problems import not_migrated_problem
from runtime.api.services import services
from runtime.db import pending, utcnow

blueprint = Blueprint("health", __name__)
PENDING_CAP = 10_000  # readiness counts at most this many outbox rows


@blueprint.get("/livez")
@blueprint.get("/healthz")
def healthz():
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz():
    """Ready when the database answers; reports the outbox backlog and the forwarded
    submissions GCP has not confirmed yet (a 503 when the database doesn't answer, or
    lacks a migration this code needs)."""
    now = utcnow()
    with services().engine.begin() as connection:
        if pending(connection):  # the queries below may work on an older schema: ask
            raise not_migrated_problem(services().settings.retry_after_seconds)
        backlog, oldest_age = outbox.stats(connection, now, cap=PENDING_CAP)
        unconfirmed, oldest_unconfirmed = receipts.unconfirmed(connection, now)
    return {
        "status": "ready",
        "database": "ok",
        "outbox": {
            "pending": backlog,  # counted up to PENDING_CAP
            "pending_capped": backlog >= PENDING_CAP,
            "oldest_pending_age_seconds": round(oldest_age, 3),
        },
        "receipts": {
            "unconfirmed": unconfirmed,
            "unconfirmed_capped": unconfirmed >= receipts.UNCONFIRMED_CAP,
            "oldest_unconfirmed_age_seconds": round(oldest_unconfirmed, 3),
        },
    }
