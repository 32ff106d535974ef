"""Accepting and reading submissions: the API's side of the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from runtime.db import outbox, submissions, utcnow
from runtime.db.group_commit import group_commit
from runtime.envelope import SubmissionIn, object_name, sha256_hex, wire_time
from runtime.ids import new_id
from runtime.jsondoc import MAX_DOCUMENT_BYTES
from runtime.outbox import pending


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body. It carries no id: the
    first body may have been another client's, and its submission is none of this one's
    business."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was used for a different body")
        self.key = key


class TooLarge(ValueError):
    """The submission's canonical form is over the size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the submission is {size} bytes in canonical JSON, over {limit}")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Accepted:
    row: dict[str, Any]
    replayed: bool


def accept(
    engine: Engine,
    submission: SubmissionIn,
    idempotency_key: str | None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Accepted:
    """Insert the submission and its outbox row in one transaction.

    With an Idempotency-Key, a retry of the same body returns the first row and inserts
    nothing; the same key with another body raises IdempotencyConflict. Keys are compared
    exactly, byte for byte, on every backend (`Order-x` and `ORDER-x` are two keys).
    The canonical form may be longer than what was posted (`1e5` is `100000.0`), so the
    size limit applies to it too (TooLarge).
    """
    body = submission.canonical_json()
    if len(body) > max_bytes:
        raise TooLarge(len(body), max_bytes)
    digest = sha256_hex(body)
    if idempotency_key is not None:
        existing = _by_key(engine, idempotency_key)
        if existing is not None:
            return _replay(existing, idempotency_key, digest)
    now = utcnow()
    new = new_id(now)
    row: dict[str, Any] = {
        "id": new,
        "schema_version": submission.schema_version,
        "type": submission.type,
        "body": body.decode(),
        "sha256": digest,
        "idempotency_key": idempotency_key,
        "status": "accepted",
        "attempts": 0,
        "last_error": None,
        "message_id": None,
        "received_at": now,
        "updated_at": now,
        "forwarded_at": None,
        "redeliveries": 0,
    }
    try:
        insert_rows(engine, [(submissions, row), (outbox, pending(new, now))])
    except IntegrityError:
        # Two requests with one key raced; the loser answers with the winner's row.
        if idempotency_key is None:
            raise
        existing = _by_key(engine, idempotency_key)
        if existing is None:
            raise
        return _replay(existing, idempotency_key, digest)
    return Accepted(row=row, replayed=False)


def insert_rows(engine: Engine, rows: list[tuple[Any, dict[str, Any]]]) -> None:
    """The accept's two rows, committed in a transaction it may share with concurrent
    accepts of this process (runtime.db.group_commit)."""
    group_commit(engine).insert(rows)


def _by_key(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.begin() as connection:
        found = connection.execute(
            select(submissions).where(submissions.c.idempotency_key == key)
        ).first()
    return dict(found._mapping) if found else None


def _replay(existing: dict[str, Any], key: str, digest: str) -> Accepted:
    if existing["sha256"] != digest:
        raise IdempotencyConflict(key)
    return Accepted(row=existing, replayed=True)


def get(connection: Connection, submission_id: str) -> dict[str, Any] | None:
    found = connection.execute(select(submissions).where(submissions.c.id == submission_id)).first()
    return dict(found._mapping) if found else None


def _time_or_none(value: Any) -> str | None:
    return wire_time(value) if value else None


def accepted_view(row: dict[str, Any]) -> dict[str, Any]:
    """The body of the 202: the same for the first answer and every idempotent replay."""
    return {
        "id": row["id"],
        "status": "accepted",
        "received_at": _time_or_none(row["received_at"]),
        "sha256": row["sha256"],
        "object_name": object_name(row["id"], row["received_at"]),
    }


def status_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "received_at": _time_or_none(row["received_at"]),
        "updated_at": _time_or_none(row["updated_at"]),
        "forwarded_at": _time_or_none(row["forwarded_at"]),
        "stored": row["status"] == "stored",
        "stored_at": _time_or_none(row["stored_at"]),
        "object_uri": row["object_uri"],
        "generation": row["generation"],
        "redeliveries": row["redeliveries"] or 0,
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "message_id": row["message_id"],
        "sha256": row["sha256"],
        "object_name": object_name(row["id"], row["received_at"]),
    }
