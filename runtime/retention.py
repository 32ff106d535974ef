"""Retention: the AWS side keeps a submission as long as GCP keeps its object, no longer.

A `stored` submission (GCP's receipt confirmed it) is purged once its `stored_at` is older
than `stored_days`: the bucket's lifecycle deletes the object at the same age, and both
read `[retention] stored_days` from the environment file. A `failed` one is purged
`failed_days` after it last changed (what `relay replay` can still bring back). Nothing
else is ever purged: `accepted` and `forwarded` rows — pending, or forwarded without a
receipt — survive any age, so no submission GCP has not confirmed is lost to retention.

Purging goes in batches of at most `batch_size` rows, one short transaction each. The rows
are picked in the (status, received_at) index (every stored or failed row's `stored_at` /
`updated_at` is at or after its `received_at`, so the index range holds all candidates) and
locked `FOR UPDATE SKIP LOCKED` under READ COMMITTED, as the outbox claim is: no gap locks,
so the API's inserts never wait on a purge, and a row someone else holds (a receipt, a
replay) is skipped and re-checked next time. The status is checked again by the DELETE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select

from runtime.db import outbox, submissions

log = logging.getLogger("skybridge.retention")

STORED = "stored"
FAILED = "failed"


@dataclass(frozen=True)
class Policy:
    """Days to keep each purgeable status; 0 keeps it forever."""

    stored_days: int = 0
    failed_days: int = 0

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        days = {STORED: self.stored_days, FAILED: self.failed_days}
        return {status: now - timedelta(days=n) for status, n in days.items() if n > 0}


@dataclass
class Purged:
    stored: int = 0
    failed: int = 0
    outbox: int = 0  # outbox rows of purged submissions (normally none are left)
    more: bool = False  # stopped at max_batches with rows still due

    @property
    def submissions(self) -> int:
        return self.stored + self.failed


def due(status: str, cutoff: datetime, limit: int):
    """The ids of up to `limit` rows of `status` past `cutoff`, oldest first, locked."""
    aged = submissions.c.stored_at if status == STORED else submissions.c.updated_at
    return (
        select(submissions.c.id)
        .where(
            submissions.c.status == status,
            submissions.c.received_at < cutoff,  # the index range; `aged` filters within it
            aged < cutoff,
        )
        .order_by(submissions.c.status, submissions.c.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def purge_batch(
    connection: Connection, status: str, cutoff: datetime, limit: int
) -> tuple[int, int]:
    """Delete one batch inside the caller's transaction: (submissions, outbox rows)."""
    ids = list(connection.scalars(due(status, cutoff, limit)))
    if not ids:
        return 0, 0
    queued = connection.execute(delete(outbox).where(outbox.c.submission_id.in_(ids))).rowcount
    gone = connection.execute(
        delete(submissions).where(submissions.c.id.in_(ids), submissions.c.status == status)
    ).rowcount
    return gone, queued


def purge(
    engine: Engine,
    now: datetime,
    policy: Policy,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
) -> Purged:
    """Purge what the policy says is past retention, one transaction per batch; at most
    `max_batches` batches per status when given (`more` then says whether rows are still
    due), so a backlog of one status never holds back the other."""
    purged = Purged()
    for status, cutoff in policy.cutoffs(now).items():
        batches = 0
        while True:
            if max_batches is not None and batches >= max_batches:
                purged.more = True
                break
            with engine.begin() as connection:
                gone, queued = purge_batch(connection, status, cutoff, batch_size)
            batches += 1
            purged.outbox += queued
            if status == STORED:
                purged.stored += gone
            else:
                purged.failed += gone
            if gone < batch_size:
                break
    if purged.submissions:
        log.info(
            "purged %d stored and %d failed submissions past retention",
            purged.stored,
            purged.failed,
            extra={
                "event": "retention.purged",
                "stored": purged.stored,
                "failed": purged.failed,
                "outbox": purged.outbox,
                "stored_days": policy.stored_days,
                "failed_days": policy.failed_days,
            },
        )
    return purged
