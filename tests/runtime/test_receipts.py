"""Delivery receipts and reconciliation on the AWS side, on SQLite and MariaDB: a matching
receipt marks a submission stored once; anything else never does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, inspect, select

from runtime import outbox, receipts
from runtime.db import MIGRATIONS, create_db_engine, migrate, schema_migrations
from runtime.db import outbox as outbox_table
from runtime.db import submissions as submissions_table
from runtime.db.migrations import RECEIPT_COLUMNS
from runtime.envelope import Receipt
from runtime.settings import Settings

POLICY = receipts.Policy(window=timedelta(seconds=30), max_redeliveries=2)


def accept(client, count: int = 1) -> list[dict]:
    accepted = []
    for _ in range(count):
        body = {"type": "receipt.test", "data": {"nonce": uuid.uuid4().hex}}
        response = client.post("/v1/submissions", json=body)
        assert response.status_code == 202
        accepted.append(response.get_json())
    return accepted


def forward_all(engine, confirm_in: timedelta = timedelta(seconds=30)) -> list[outbox.Claimed]:
    """What the relay does when ingest publishes every claimed row."""
    batch = outbox.claim(engine, 1000, 60)
    now = datetime.now(UTC)
    outbox.settle(
        engine,
        batch,
        forwarded={c.submission_id: f"m-{c.submission_id}" for c in batch},
        failed={},
        retry={},
        confirm_by={c.submission_id: now + confirm_in for c in batch},
    )
    return batch


def receipt_for(item: dict, **overrides) -> Receipt:
    values = {
        "submission_id": item["id"],
        "bucket": "assets",
        "object_name": item["object_name"],
        "generation": 1700000000000001,
        "sha256": item["sha256"],
        "stored_at": datetime.now(UTC),
    }
    return Receipt(**(values | overrides))


def status(client, item: dict) -> dict:
    return client.get(f"/v1/submissions/{item['id']}").get_json()


def test_a_matching_receipt_marks_the_submission_stored(client, engine):
    (item,) = accept(client)
    forward_all(engine)
    receipt = receipt_for(item)
    applied = receipts.apply(engine, [receipt], datetime.now(UTC))
    assert list(applied.stored) == [item["id"]]
    shown = status(client, item)
    assert shown["status"] == "stored"
    assert shown["stored"] is True
    assert shown["object_uri"] == f"gs://assets/{item['object_name']}"
    assert shown["generation"] == 1700000000000001
    assert datetime.fromisoformat(shown["stored_at"]) == receipt.stored_at


def test_a_receipt_before_the_relay_settles_wins_and_drops_the_outbox_row(client, engine):
    (item,) = accept(client)
    batch = outbox.claim(engine, 10, 60)  # the relay holds the row while the receipt lands
    receipts.apply(engine, [receipt_for(item)], datetime.now(UTC))
    outbox.settle(engine, batch, forwarded={item["id"]: "m"}, failed={}, retry={})
    assert status(client, item)["status"] == "stored"
    with engine.begin() as connection:
        assert connection.scalar(select(func.count()).select_from(outbox_table)) == 0


def test_duplicate_and_out_of_order_receipts_store_each_once(client, engine):
    items = accept(client, 3)
    forward_all(engine)
    first = [receipt_for(item) for item in items]
    batch = [first[2], first[0], first[2], first[1], first[0]]
    applied = receipts.apply(engine, batch, datetime.now(UTC))
    assert sorted(applied.stored) == sorted(item["id"] for item in items)
    assert len(applied.already) == 2
    again = receipts.apply(engine, list(reversed(first)), datetime.now(UTC))
    assert not again.stored
    assert len(again.already) == 3
    assert {status(client, item)["status"] for item in items} == {"stored"}


def test_a_receipt_with_another_hash_never_marks_stored(client, engine):
    (item,) = accept(client)
    forward_all(engine)
    applied = receipts.apply(engine, [receipt_for(item, sha256="f" * 64)], datetime.now(UTC))
    assert applied.mismatched == [item["id"]]
    assert not applied.stored
    shown = status(client, item)
    assert shown["status"] == "forwarded"
    assert shown["stored_at"] is None
    assert "sha256" in shown["last_error"]


def test_a_receipt_for_an_unknown_id_is_reported_and_changes_nothing(client, engine):
    (item,) = accept(client)
    stranger = receipt_for(item, submission_id="01ARZ3NDEKTSV4RRFFQ69G5FAV")
    applied = receipts.apply(engine, [stranger], datetime.now(UTC))
    assert applied.unknown == ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]
    assert status(client, item)["status"] == "accepted"


def test_unconfirmed_past_the_window_is_forwarded_again_then_failed(client, engine):
    (item,) = accept(client)
    for redelivery in range(POLICY.max_redeliveries):
        forward_all(engine, confirm_in=timedelta(seconds=-1))  # the window is already over
        result = receipts.reconcile(engine, datetime.now(UTC), POLICY, 100)
        assert result.redelivered == [item["id"]]
        shown = status(client, item)
        assert shown["status"] == "forwarded"  # still unconfirmed while it goes again
        assert shown["redeliveries"] == redelivery + 1
        # Not due again until the relay has forwarded it once more.
        assert receipts.reconcile(engine, datetime.now(UTC), POLICY, 100).redelivered == []
    forward_all(engine, confirm_in=timedelta(seconds=-1))
    result = receipts.reconcile(engine, datetime.now(UTC), POLICY, 100)
    assert result.failed == [item["id"]]
    shown = status(client, item)
    assert shown["status"] == "failed"
    assert "no receipt" in shown["last_error"]
    assert outbox.replay(engine) == [item["id"]]
    assert status(client, item)["redeliveries"] == 0


def test_nothing_within_its_window_is_forwarded_again(client, engine):
    accept(client, 2)
    forward_all(engine, confirm_in=timedelta(seconds=30))
    assert receipts.reconcile(engine, datetime.now(UTC), POLICY, 100).redelivered == []


def test_the_window_doubles_with_each_redelivery_up_to_a_cap():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    waits = [(POLICY.confirm_by(start, n) - start).total_seconds() for n in range(6)]
    assert waits == [30, 60, 120, 240, 240, 240]


def test_readyz_reports_unconfirmed_count_and_oldest_age(client, engine):
    items = accept(client, 3)
    forward_all(engine)
    receipts.apply(engine, [receipt_for(items[0])], datetime.now(UTC))
    body = client.get("/readyz").get_json()
    assert body["receipts"]["unconfirmed"] == 2
    assert body["receipts"]["oldest_unconfirmed_age_seconds"] >= 0
    with engine.begin() as connection:
        later = datetime.now(UTC) + timedelta(seconds=100)
        count, age = receipts.unconfirmed(connection, later)
    assert count == 2
    assert age >= 100


def test_the_unconfirmed_age_counts_from_the_first_forwarding(client, engine, monkeypatch):
    """Not from acceptance (time in the outbox is not time without a receipt), and not from
    the latest forwarding (each redelivery would hide that none was confirmed); a replayed
    submission waits anew."""
    start = datetime.now(UTC)
    clock = [start]
    monkeypatch.setattr(outbox, "utcnow", lambda: clock[0])

    def age_at(seconds: float) -> float:
        with engine.begin() as connection:
            return receipts.unconfirmed(connection, start + timedelta(seconds=seconds))[1]

    (item,) = accept(client)
    clock[0] = start + timedelta(seconds=100)  # it waited 100 s in the outbox
    forward_all(engine, confirm_in=timedelta(seconds=-1))
    assert age_at(130) == pytest.approx(30, abs=0.01)
    assert receipts.reconcile(engine, clock[0], POLICY, 10).redelivered == [item["id"]]
    clock[0] = start + timedelta(seconds=160)  # forwarded again, still no receipt
    forward_all(engine, confirm_in=timedelta(seconds=-1))
    assert age_at(200) == pytest.approx(100, abs=0.01)
    receipts.reconcile(engine, clock[0], POLICY, 10)
    forward_all(engine, confirm_in=timedelta(seconds=-1))
    assert receipts.reconcile(engine, clock[0], POLICY, 10).failed == [item["id"]]
    assert outbox.replay(engine) == [item["id"]]
    clock[0] = start + timedelta(seconds=400)
    forward_all(engine)
    assert age_at(410) == pytest.approx(10, abs=0.01)


def test_migration_2_adds_the_receipt_columns_to_a_version_1_database(database_url):
    """A database created before receipts existed gains the columns, and what it had
    forwarded becomes due for confirmation."""
    from sqlalchemy import MetaData, Table

    old = MetaData()
    Table(
        "submissions",
        old,
        *[c._copy() for c in submissions_table.columns if c.name not in RECEIPT_COLUMNS],
    )
    outbox_table.to_metadata(old)
    schema_migrations.to_metadata(old)
    engine = create_engine(database_url)
    old.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            schema_migrations.insert().values(version=1, description="v1", applied_at=now)
        )
        connection.execute(
            old.tables["submissions"]
            .insert()
            .values(
                id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
                schema_version="1",
                type="t",
                body="{}",
                sha256="0" * 64,
                status="forwarded",
                attempts=1,
                received_at=now,
                updated_at=now,
                forwarded_at=now,
            )
        )
    migrated = create_db_engine(Settings(database_url=database_url))
    assert migrate(migrated) == [v for v, _, _ in MIGRATIONS if v > 1]
    columns = {c["name"] for c in inspect(migrated).get_columns("submissions")}
    assert set(RECEIPT_COLUMNS) <= columns
    indexes = {i["name"] for i in inspect(migrated).get_indexes("submissions")}
    assert {"ix_submissions_status_due", "ix_submissions_status_received"} <= indexes
    with migrated.begin() as connection:
        row = connection.execute(select(submissions_table)).one()
    assert row.redeliveries == 0
    assert row.confirm_due_at == row.forwarded_at
    assert len(receipts.reconcile(migrated, datetime.now(UTC), POLICY, 10).redelivered) == 1
    migrated.dispose()
    engine.dispose()


@pytest.mark.parametrize("field", ["sha256", "generation", "submission_id"])
def test_the_receipt_model_refuses_bad_fields(field):
    values = {
        "submission_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "bucket": "assets",
        "object_name": "submissions/x.json",
        "generation": 1,
        "sha256": "a" * 64,
        "stored_at": "2026-01-01T00:00:00Z",
    }
    values[field] = {"sha256": "nope", "generation": 0, "submission_id": "x"}[field]
    with pytest.raises(ValueError, match=field):
        Receipt.model_validate(values)
