"""Delivery receipts on the AWS side: what GCP says it stored, against what AWS accepted.

Only the end points can confirm delivery. `store` publishes a `Receipt` once an object
exists; the relay applies it here: a receipt whose sha256 matches the accepted one marks the
submission `stored` (with where and when) and drops any outbox row left, in one
transaction; a receipt with another hash is a mismatch and never marks anything. Applying
the same receipt twice, a late one or one for an unknown id changes nothing.

Reconciliation closes the loop for what GCP dropped (dead letters, lost messages): a
submission still `forwarded` when its `confirm_due_at` passes is put back in the outbox,
and after `max_redeliveries` forwardings without a receipt it becomes `failed`, which
`relay replay` handles. It stays `forwarded` while it is redelivered, so the unconfirmed
count and age (since its first forwarding) tell the truth throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, func, literal, select, update

from runtime import outbox
from runtime.db import submissions
from runtime.db.schema import UTCDateTime
from runtime.envelope import Receipt

log = logging.getLogger("skybridge.receipts")

FORWARDED = "forwarded"
STORED = "stored"
UNCONFIRMED_CAP = 10_000  # the health check counts at most this many (an index range scan)


@dataclass
class Applied:
    stored: dict[str, float] = field(default_factory=dict)  # id → accepted→stored, in ms
    mismatched: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # duplicates, late ones


def apply(engine: Engine, receipts: Sequence[Receipt], now: datetime) -> Applied:
    """Mark every submission a matching receipt confirms `stored`, in one transaction."""
    applied = Applied()
    if not receipts:
        return applied
    ids = sorted({receipt.submission_id for receipt in receipts})
    with engine.begin() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                select(
                    submissions.c.id,
                    submissions.c.sha256,
                    submissions.c.status,
                    submissions.c.received_at,
                )
                .where(submissions.c.id.in_(ids))
                .with_for_update()
            )
        }
        confirmed: dict[str, Receipt] = {}
        for receipt in receipts:
            sid = receipt.submission_id
            row = rows.get(sid)
            if row is None:
                applied.unknown.append(sid)
            elif receipt.sha256 != row.sha256:
                applied.mismatched.append(sid)
                log.error(
                    "receipt hash does not match the accepted submission: not marked stored",
                    extra={
                        "event": "receipt.mismatch",
                        "submission_id": sid,
                        "accepted_sha256": row.sha256,
                        "receipt_sha256": receipt.sha256,
                        "object_uri": receipt.object_uri,
                        "generation": receipt.generation,
                    },
                )
            elif row.status == STORED or sid in confirmed:
                applied.already.append(sid)
            else:
                confirmed[sid] = receipt
                applied.stored[sid] = (now - row.received_at).total_seconds() * 1000
        if confirmed:
            by_sid = submissions.c.id

            def per_row(values: dict[str, Any], type_: Any = None) -> Any:
                return case(
                    {sid: literal(value, type_) for sid, value in values.items()}, value=by_sid
                )

            connection.execute(
                update(submissions)
                .where(by_sid.in_(list(confirmed)), submissions.c.status != STORED)
                .values(
                    status=STORED,
                    stored_at=per_row(
                        {sid: r.stored_at for sid, r in confirmed.items()}, UTCDateTime()
                    ),
                    object_uri=per_row({sid: r.object_uri for sid, r in confirmed.items()}),
                    generation=per_row({sid: r.generation for sid, r in confirmed.items()}),
                    confirm_due_at=None,
                    last_error=None,
                    updated_at=now,
                )
            )
            outbox.discard(connection, list(confirmed))
        for sid in applied.mismatched:
            connection.execute(
                update(submissions)
                .where(submissions.c.id == sid, submissions.c.status != STORED)
                .values(last_error="a receipt from GCP carried another sha256", updated_at=now)
            )
    for sid in applied.unknown:
        log.warning(
            "receipt for an unknown submission", extra={"event": "receipt.unknown_id", "id": sid}
        )
    return applied


@dataclass(frozen=True)
class Policy:
    """When a forwarded submission without a receipt is forwarded again, and how often."""

    window: timedelta
    max_redeliveries: int
    max_factor: int = 8  # the window doubles with every redelivery, up to this many times

    def confirm_by(self, forwarded_at: datetime, redeliveries: int) -> datetime:
        return forwarded_at + self.window * min(2**redeliveries, self.max_factor)


@dataclass
class Reconciled:
    redelivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def reconcile(engine: Engine, now: datetime, policy: Policy, limit: int) -> Reconciled:
    """Forward again (or fail) up to `limit` forwarded submissions whose window is over."""
    result = Reconciled()
    with engine.begin() as connection:
        due = connection.execute(
            select(submissions.c.id, submissions.c.redeliveries)
            .where(submissions.c.status == FORWARDED, submissions.c.confirm_due_at <= now)
            .order_by(submissions.c.confirm_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in due:
            spent = row.redeliveries >= policy.max_redeliveries
            (result.failed if spent else result.redelivered).append(row.id)
        if result.redelivered:
            # Not due again until the relay has forwarded it (settle sets the next time).
            connection.execute(
                update(submissions)
                .where(submissions.c.id.in_(result.redelivered))
                .values(
                    redeliveries=submissions.c.redeliveries + 1,
                    confirm_due_at=None,
                    last_error="no receipt from GCP within the window; forwarding again",
                    updated_at=now,
                )
            )
            outbox.requeue(connection, result.redelivered, now)
        if result.failed:
            connection.execute(
                update(submissions)
                .where(submissions.c.id.in_(result.failed))
                .values(
                    status="failed",
                    confirm_due_at=None,
                    last_error=(
                        f"no receipt from GCP after {policy.max_redeliveries + 1} forwardings; "
                        "fix the cause, then `python -m runtime.relay replay`"
                    ),
                    updated_at=now,
                )
            )
    for sid in result.failed:
        log.error(
            "no receipt after every redelivery: failed",
            extra={"event": "submission.unconfirmed_failed", "submission_id": sid},
        )
    if result.redelivered:
        log.warning(
            "forwarding %d unconfirmed submissions again",
            len(result.redelivered),
            extra={"event": "relay.reconciled", "count": len(result.redelivered)},
        )
    return result


def unconfirmed(connection: Connection, now: datetime) -> tuple[int, float]:
    """(forwarded submissions without a receipt, capped at UNCONFIRMED_CAP; the age in
    seconds of the oldest, since it was first forwarded). Two index range scans, never the
    table.

    The age is what UnconfirmedAge alarms on, "no receipt for N s": since acceptance it
    counted the time a submission waited in the outbox, so a backlog drained after an
    outage fired the alarm while every receipt came on time. Since the first forwarding,
    not the latest: reconciliation forwards it again each window, and an age reset by each
    redelivery would never show that it is forwarded again and again without a receipt."""
    forwarded = submissions.c.status == FORWARDED
    capped = select(submissions.c.id).where(forwarded).limit(UNCONFIRMED_CAP).subquery()
    count = connection.scalar(select(func.count()).select_from(capped)) or 0
    since = submissions.c.first_forwarded_at
    oldest = connection.scalar(
        select(since).where(forwarded, since.is_not(None)).order_by(since).limit(1)
    )
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return int(count), max(age, 0.0)
