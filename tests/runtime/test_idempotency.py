"""Idempotency keys are exact, byte for byte, on SQLite and on MySQL/MariaDB (whose default
collation compares case-insensitively), and no answer names another client's submission."""

from __future__ import annotations

from sqlalchemy import func, select

from runtime.db import submissions

PHOTO = {"type": "photo", "data": {"n": 1}}


def post(client, body, key):
    return client.post("/v1/submissions", json=body, headers={"Idempotency-Key": key})


def count(engine) -> int:
    with engine.begin() as connection:
        return connection.scalar(select(func.count()).select_from(submissions))


def test_keys_differing_only_in_case_are_two_keys(client, engine):
    first = post(client, PHOTO, "Order-x")
    other = post(client, {**PHOTO, "type": "other"}, "ORDER-x")
    same_body = post(client, PHOTO, "order-X")
    assert [first.status_code, other.status_code, same_body.status_code] == [202, 202, 202]
    ids = {first.get_json()["id"], other.get_json()["id"], same_body.get_json()["id"]}
    assert len(ids) == 3, "each key is its own submission"
    assert "Idempotent-Replayed" not in same_body.headers
    assert count(engine) == 3


def test_keys_differing_in_trailing_space_or_accent_are_two_keys(client, engine):
    assert post(client, PHOTO, "k").status_code == 202
    assert post(client, {**PHOTO, "type": "b"}, "k ").status_code == 202
    assert count(engine) == 2


def test_a_conflict_does_not_name_the_first_submission(client):
    first = post(client, PHOTO, "order-1").get_json()["id"]
    conflict = post(client, {**PHOTO, "type": "other"}, "order-1")
    assert conflict.status_code == 409
    assert first not in conflict.get_data(as_text=True)


def test_the_exact_key_with_the_same_body_replays(client, engine):
    first = post(client, PHOTO, "Order-x")
    again = post(client, PHOTO, "Order-x")
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(engine) == 1
