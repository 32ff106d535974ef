"""The REST API's behaviour, on SQLite and on MySQL/MariaDB."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import func, select, text

from runtime.api import create_app
from runtime.db import outbox, submissions
from runtime.envelope import canonical_json
from runtime.ids import id_time

PHOTO = {"type": "photo.uploaded", "data": {"caption": "Zürich ☀", "tags": ["a", "b"], "n": 3}}


def count(engine, table) -> int:
    with engine.begin() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_accept_answers_202_with_id_location_and_checksum(client):
    response = client.post("/v1/submissions", json=PHOTO)
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/submissions/{body['id']}"
    expected = {"schema_version": "1", **PHOTO}
    assert body["sha256"] == hashlib.sha256(canonical_json(expected)).hexdigest()
    assert body["object_name"].endswith(f"/{body['id']}.json")
    assert body["object_name"].startswith(f"submissions/{id_time(body['id']):%Y/%m/%d}/")


def test_accept_writes_submission_and_outbox_row_together(client, engine):
    sid = client.post("/v1/submissions", json=PHOTO).get_json()["id"]
    with engine.begin() as connection:
        row = connection.execute(select(submissions).where(submissions.c.id == sid)).one()
        queued = connection.scalar(select(func.count()).where(outbox.c.submission_id == sid))
    assert row.status == "accepted"
    assert json.loads(row.body)["data"] == PHOTO["data"]
    assert queued == 1


def test_ids_are_time_ordered(client):
    ids = [client.post("/v1/submissions", json=PHOTO).get_json()["id"] for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_failed_outbox_insert_leaves_no_submission(client, engine):
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE outbox"))
    response = client.post("/v1/submissions", json=PHOTO)
    assert response.status_code >= 500
    assert "Traceback" not in response.get_data(as_text=True)
    assert count(engine, submissions) == 0


def test_idempotent_retry_returns_first_response_and_creates_nothing(client, engine):
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/submissions", json=PHOTO, headers=headers)
    again = client.post("/v1/submissions", json=PHOTO, headers=headers)
    assert again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(engine, submissions) == 1
    assert count(engine, outbox) == 1


def test_idempotency_key_with_different_body_is_409(client, engine):
    headers = {"Idempotency-Key": "order-43"}
    client.post("/v1/submissions", json=PHOTO, headers=headers)
    body = problem(
        client.post("/v1/submissions", json={**PHOTO, "type": "other"}, headers=headers), 409
    )
    assert body["errors"][0]["field"] == "header:Idempotency-Key"
    assert count(engine, submissions) == 1


def test_invalid_idempotency_key_is_400(client):
    body = problem(
        client.post("/v1/submissions", json=PHOTO, headers={"Idempotency-Key": "x" * 300}), 400
    )
    assert "Idempotency-Key" in body["detail"]


def test_status_reports_accepted_submission(client):
    sid = client.post("/v1/submissions", json=PHOTO).get_json()["id"]
    status = client.get(f"/v1/submissions/{sid}").get_json()
    assert status["status"] == "accepted"
    assert status["attempts"] == 0
    assert status["last_error"] is None
    assert status["forwarded_at"] is None
    assert status["object_name"].endswith(f"{sid}.json")


def test_unknown_submission_is_404(client):
    problem(client.get("/v1/submissions/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404)
    problem(client.get("/v1/submissions/not-an-id"), 404)


def test_malformed_json_is_400(client):
    body = problem(
        client.post("/v1/submissions", data="{oops", content_type="application/json"), 400
    )
    assert "line 1 column 2" in body["detail"]


@pytest.mark.parametrize(
    "raw", ['{"type":"a","data":{"x":NaN}}', b"\xff\xfe", "[" * 100_000 + "]" * 100_000]
)
def test_json_that_python_would_accept_or_choke_on_is_400(client, raw):
    problem(client.post("/v1/submissions", data=raw, content_type="application/json"), 400)


def test_wrong_content_type_is_415(client):
    body = problem(client.post("/v1/submissions", data="type=a", content_type="text/plain"), 415)
    assert "text/plain" in body["detail"]


def test_too_large_body_is_413(database_url):
    small = create_app(
        {"database_url": database_url, "migrate_on_start": True, "max_body_bytes": 2048}
    ).test_client()
    big = {"type": "blob", "data": {"payload": "x" * 4096}}
    body = problem(small.post("/v1/submissions", json=big), 413)
    assert "2048" in body["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"data": {}}, "/type"),
        ({"type": "ok"}, "/data"),
        ({"type": "", "data": {}}, "/type"),
        ({"type": "ok", "data": [1]}, "/data"),
        ({"type": "ok", "data": {}, "extra": 1}, "/extra"),
        ({"type": "ok", "data": {}, "schema_version": "2"}, "/schema_version"),
        ([], "/"),
    ],
)
def test_schema_violation_is_422_naming_the_field(client, payload, field):
    body = problem(client.post("/v1/submissions", json=payload), 422)
    assert body["errors"][0]["field"] == field
    assert body["detail"].startswith(field)


def test_unknown_route_is_404_and_wrong_method_is_405(client):
    problem(client.get("/v2/nothing"), 404)
    body = problem(client.delete("/v1/submissions"), 405)
    assert "DELETE" in body["detail"]


def test_health_and_readiness_report_outbox(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/livez").get_json() == {"status": "ok"}
    client.post("/v1/submissions", json=PHOTO)
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready"
    assert ready["outbox"]["pending"] == 1
    assert ready["outbox"]["oldest_pending_age_seconds"] >= 0


def test_database_unavailable_is_503_with_retry_after(tmp_path):
    # A port nobody listens on: the connection is refused at once.
    from local_stack.ports import free_port

    app = create_app({"database_url": f"mysql+pymysql://root@127.0.0.1:{free_port()}/x"})
    client = app.test_client()
    for response in (client.post("/v1/submissions", json=PHOTO), client.get("/readyz")):
        body = problem(response, 503)
        assert response.headers["Retry-After"] == "5"
        assert "database" in body["detail"]


def test_request_id_is_echoed(client):
    response = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"


def test_openapi_document_describes_the_routes(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/v1/submissions",
        "/v1/submissions/{id}",
        "/livez",
        "/healthz",
        "/readyz",
        "/openapi.json",
    }
    schema = document["components"]["schemas"]["SubmissionIn"]
    assert set(schema["required"]) == {"type", "data"}


def test_readiness_reads_a_bounded_number_of_outbox_rows(client, engine, monkeypatch):
    from sqlalchemy import event

    from runtime.api import health

    monkeypatch.setattr(health, "PENDING_CAP", 2)
    for n in range(3):
        client.post("/v1/submissions", json={"type": "t", "data": {"n": n}})
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 — (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        ready = client.get("/readyz").get_json()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert ready["outbox"]["pending"] == 2 and ready["outbox"]["pending_capped"] is True
    outbox_reads = [s for s in statements if "FROM outbox" in s]
    assert outbox_reads and all("LIMIT" in s for s in outbox_reads), outbox_reads
    assert client.get("/livez").get_json() == {"status": "ok"}
