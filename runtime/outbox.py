"""The outbox: every query over the work still to deliver.

A row in `outbox` is one accepted submission GCP does not have yet. The relay *claims* due
rows (`FOR UPDATE SKIP LOCKED` on MySQL, then a lease token and a due time in the future,
so several relays never hold the same row and a relay killed mid-batch loses nothing: its
lease runs out), then *settles* each one: forwarded (the outbox row goes, the submission
row stays), failed (likewise, with the reason), or retried later. `replay` puts failed
submissions back, `requeue` is how it and reconciliation (`runtime.receipts`) put a row
back; `stats` is the backlog the health check and the metrics report. A submission that a
receipt already marked `stored` is never moved back by a late settle.

The policy (what counts as failed, how long to back off) is the relay's; this module only
says how each decision is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    update,
)

from runtime.db import outbox, submissions, utcnow
from runtime.db.schema import UTCDateTime


@dataclass(frozen=True)
class Claimed:
    """One leased outbox row with what the relay needs to forward its submission."""

    outbox_id: int
    submission_id: str
    attempts: int
    body: str  # the canonical JSON of the envelope, as stored
    sha256: str
    received_at: datetime
    redeliveries: int = 0  # how often reconciliation forwarded it again already


@dataclass(frozen=True)
class Retry:
    reason: str
    delay: timedelta


def pending(submission_id: str, now: datetime) -> dict[str, object]:
    """The outbox row the API inserts with a new submission, in the same transaction."""
    return {"submission_id": submission_id, "created_at": now, "available_at": now, "attempts": 0}


def claim(engine: Engine, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to `limit` due rows to this round (a lease token no other claim shares)."""
    now = utcnow()
    token = str(uuid.uuid4())
    lease_until = now + timedelta(seconds=lease_seconds)
    with engine.begin() as connection:
        ids: list[int] = list(
            connection.scalars(
                select(outbox.c.id)
                .where(outbox.c.available_at <= now)
                .order_by(outbox.c.available_at, outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        # The due-time guard makes the lease safe where FOR UPDATE is not (SQLite).
        connection.execute(
            update(outbox)
            .where(and_(outbox.c.id.in_(ids), outbox.c.available_at <= now))
            .values(available_at=lease_until, claim=token)
        )
        rows = connection.execute(
            select(
                outbox.c.id,
                outbox.c.attempts,
                submissions.c.id.label("submission_id"),
                submissions.c.body,
                submissions.c.sha256,
                submissions.c.received_at,
                submissions.c.redeliveries,
            )
            .join(submissions, submissions.c.id == outbox.c.submission_id)
            .where(outbox.c.claim == token)
            .order_by(outbox.c.id)
        ).all()
    return [
        Claimed(
            outbox_id=row.id,
            submission_id=row.submission_id,
            attempts=row.attempts,
            body=row.body,
            sha256=row.sha256,
            received_at=row.received_at,
            redeliveries=row.redeliveries,
        )
        for row in rows
    ]


def _per_row(values: Mapping[str, Any], rows: Mapping[str, Any], type_: Any = None) -> Any:
    """Each submission's own value in an UPDATE of `rows` (by submission id): one literal
    when every row gets the same (the usual case for attempts and the confirmation time,
    which saves building and sending a CASE of a hundred branches), else CASE on the
    submission id. A row whose id is not in `values` gets NULL (every row, if it is empty)."""
    distinct = set(values.values())
    if not distinct:
        return null()
    if len(distinct) == 1 and values.keys() == rows.keys():
        return literal(next(iter(distinct)), type_)
    return case(
        {sid: literal(value, type_) for sid, value in values.items()},
        value=submissions.c.id,
        else_=None,
    )


def settle(
    engine: Engine,
    batch: list[Claimed],
    *,
    forwarded: dict[str, str],
    failed: dict[str, str],
    retry: dict[str, Retry],
    confirm_by: Mapping[str, datetime] | None = None,
) -> None:
    """Write what became of each claimed row, in one transaction: `forwarded` maps a
    submission id to its Pub/Sub message id, `failed` to the reason it will never be
    delivered, `retry` to the reason and how long until it is due again; `confirm_by`
    says when a forwarded submission without a receipt is due for reconciliation. Every
    delivery attempt counts, whatever its outcome."""
    now = utcnow()
    by_id = {claimed.submission_id: claimed for claimed in batch}
    not_stored = submissions.c.status != "stored"  # a receipt came first: it stays stored
    with engine.begin() as connection:
        if forwarded:
            # One statement for the whole batch: a round trip per row cost more than
            # the HTTP call that delivered them.
            by_sid = submissions.c.id
            due = {sid: when for sid, when in (confirm_by or {}).items() if sid in forwarded}
            connection.execute(
                update(submissions)
                .where(by_sid.in_(list(forwarded)), not_stored)
                .values(
                    status="forwarded",
                    attempts=_per_row(
                        {sid: by_id[sid].attempts + 1 for sid in forwarded}, forwarded
                    ),
                    message_id=_per_row(forwarded, forwarded),
                    forwarded_at=now,
                    # A redelivery keeps the first: the unconfirmed age counts from it.
                    first_forwarded_at=func.coalesce(
                        submissions.c.first_forwarded_at, literal(now, UTCDateTime())
                    ),
                    updated_at=now,
                    last_error=None,
                    confirm_due_at=_per_row(due, forwarded, UTCDateTime()),
                )
            )
        for sid, reason in failed.items():
            connection.execute(
                update(submissions)
                .where(submissions.c.id == sid, not_stored)
                .values(
                    status="failed",
                    attempts=by_id[sid].attempts + 1,
                    last_error=reason[:1000],
                    updated_at=now,
                )
            )
        done = [by_id[sid].outbox_id for sid in (*forwarded, *failed)]
        if done:
            connection.execute(delete(outbox).where(outbox.c.id.in_(done)))
        for sid, again in retry.items():
            claimed = by_id[sid]
            attempts = claimed.attempts + 1
            connection.execute(
                update(outbox)
                .where(outbox.c.id == claimed.outbox_id)
                .values(attempts=attempts, available_at=now + again.delay, claim=None)
            )
            connection.execute(
                update(submissions)
                .where(submissions.c.id == sid, not_stored)
                .values(attempts=attempts, last_error=again.reason[:1000], updated_at=now)
            )


def replay(engine: Engine, ids: list[str] | None = None) -> list[str]:
    """Re-queue failed submissions (all, or the given ids). Returns their ids."""
    now = utcnow()
    with engine.begin() as connection:
        query = select(submissions.c.id).where(submissions.c.status == "failed")
        if ids:
            query = query.where(submissions.c.id.in_(ids))
        failed: list[str] = list(connection.scalars(query.with_for_update()))
        if not failed:
            return []
        requeue(connection, failed, now)
        connection.execute(
            update(submissions)
            .where(submissions.c.id.in_(failed))
            .values(
                status="accepted",
                attempts=0,
                redeliveries=0,
                first_forwarded_at=None,  # fixed and sent anew: a new wait for a receipt
                updated_at=now,
            )
        )
    return failed


def requeue(connection: Connection, ids: list[str], now: datetime) -> None:
    """Put the submissions back in the outbox, due now (inside the caller's transaction)."""
    connection.execute(insert(outbox), [pending(sid, now) for sid in ids])


def discard(connection: Connection, ids: list[str]) -> None:
    """Drop the outbox rows of submissions GCP confirmed: nothing is left to deliver."""
    connection.execute(delete(outbox).where(outbox.c.submission_id.in_(ids)))


def stats(connection: Connection, now: datetime, cap: int | None = None) -> tuple[int, float]:
    """(pending rows, counted up to `cap` when given; age in seconds of the oldest pending
    row). The oldest is the lowest id (ids grow with insertion): one primary-key lookup,
    never a scan; with a cap, the count reads at most `cap` index entries."""
    rows = select(outbox.c.id)
    if cap is not None:
        rows = rows.limit(cap)
    count = connection.execute(select(func.count()).select_from(rows.subquery())).scalar_one()
    oldest: datetime | None = connection.execute(
        select(outbox.c.created_at).order_by(outbox.c.id).limit(1)
    ).scalar()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)  # aggregates skip the column's type on SQLite
    age = (now - oldest).total_seconds() if oldest else 0.0
    return int(count), max(age, 0.0)
