"""The two Cloud Functions under functions-framework, with the real Pub/Sub and Cloud
Storage clients against the emulators."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import UTC, datetime

import functions_framework
import pytest

from runtime.envelope import Receipt, SubmissionIn, canonical_json, object_name, sha256_hex
from runtime.ids import new_id
from runtime.settings import get_settings
from tests.runtime.conftest import FUNCTIONS, PROJECT, pulled_topic


def item(data: dict | None = None, **overrides) -> dict:
    submission = SubmissionIn(type="photo", data=data or {"n": uuid.uuid4().hex})
    received = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    return {
        "submission_id": new_id(received),
        "schema_version": "1",
        "type": submission.type,
        "data": submission.data,
        "sha256": sha256_hex(submission.canonical_json()),
        "received_at": received.isoformat(),
        "source": "aws",
    } | overrides


def pull(subscriber, subscription: str, expected: int) -> list:
    messages = []
    for _ in range(20):
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
        messages += response.received_messages
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
        if len(messages) >= expected:
            break
    return messages


def test_ingest_publishes_one_message_per_submission(ingest, topic):
    _, subscription, subscriber = topic
    items = [item() for _ in range(3)]
    response = ingest.post("/", json={"schema_version": "1", "items": items})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["submission_id"] for r in results] == [i["submission_id"] for i in items]
    assert {r["status"] for r in results} == {"published"}
    messages = pull(subscriber, subscription, 3)
    by_id = {m.message.attributes["submission_id"]: m.message for m in messages}
    assert set(by_id) == {i["submission_id"] for i in items}
    for sent in items:
        message = by_id[sent["submission_id"]]
        assert dict(message.attributes) == {
            "submission_id": sent["submission_id"],
            "schema_version": "1",
            "source": "aws",
        }
        assert json.loads(message.data)["data"] == sent["data"]
        assert message.message_id in {r["message_id"] for r in results}


def test_bad_item_is_rejected_without_sinking_the_batch(ingest, topic):
    _, subscription, subscriber = topic
    good = item()
    tampered = item(sha256="0" * 64)
    broken = {"submission_id": "nope", "type": 5}
    response = ingest.post("/", json={"schema_version": "1", "items": [tampered, good, broken]})
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["rejected", "published", "rejected"]
    assert "sha256" in results[0]["error"]
    assert results[2]["error"].startswith("submission_id")
    assert [m.message.attributes["submission_id"] for m in pull(subscriber, subscription, 1)] == [
        good["submission_id"]
    ]


def test_repeated_submission_id_is_harmless(ingest):
    same = item()
    response = ingest.post("/", json={"schema_version": "1", "items": [same, same]})
    assert [r["status"] for r in response.get_json()["results"]] == ["published", "published"]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "{nope", "content_type": "application/json"}, 400),
        ({"json": {"schema_version": "1", "items": []}}, 400),
        ({"data": "x", "content_type": "text/plain"}, 415),
    ],
)
def test_ingest_refuses_a_bad_batch_with_a_problem(ingest, kwargs, status):
    response = ingest.post("/", **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert "Traceback" not in response.get_data(as_text=True)


# -- store ---------------------------------------------------------------------------------


def deliver(store_client, data: bytes, message_id: str = "42", attributes: dict | None = None):
    """POST a Pub/Sub CloudEvent the way Eventarc delivers it (binary content mode)."""
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes or {},
            "messageId": message_id,
            "publishTime": "2026-03-04T05:06:08.123Z",
        },
        "subscription": f"projects/{PROJECT}/subscriptions/eventarc",
    }
    return store_client.post(
        "/",
        json=body,
        headers={
            "ce-id": message_id,
            "ce-specversion": "1.0",
            "ce-source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/t",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        },
    )


def test_store_writes_the_processed_asset(store, bucket):
    sent = item({"caption": "héllo"})
    assert deliver(store, canonical_json(sent)).status_code == 200
    name = object_name(sent["submission_id"], datetime.fromisoformat(sent["received_at"]))
    assert name == f"submissions/2026/03/04/{sent['submission_id']}.json"
    blob = bucket.get_blob(name)
    assert blob.content_type == "application/json"
    asset = json.loads(blob.download_as_bytes())
    assert asset["data"] == sent["data"]
    assert asset["sha256"] == sent["sha256"]
    assert asset["checksum_verified"] is True
    assert asset["provenance"]["pubsub_message_id"] == "42"
    assert asset["provenance"]["pubsub_publish_time"].startswith("2026-03-04T05:06:08.123")
    assert asset["provenance"]["aws_received_at"].startswith("2026-03-04T05:06:07")


def test_redelivery_does_not_write_a_second_time(store, bucket):
    sent = item()
    assert deliver(store, canonical_json(sent), message_id="1").status_code == 200
    name = object_name(sent["submission_id"], datetime.fromisoformat(sent["received_at"]))
    generation = bucket.get_blob(name).generation
    assert deliver(store, canonical_json(sent), message_id="2").status_code == 200
    blob = bucket.get_blob(name)
    assert blob.generation == generation
    assert json.loads(blob.download_as_bytes())["provenance"]["pubsub_message_id"] == "1"


@pytest.mark.parametrize(
    "data",
    [b"not json", b'{"submission_id": "x"}', canonical_json(item(sha256="f" * 64))],
    ids=["not-json", "wrong-schema", "checksum-mismatch"],
)
def test_undecodable_message_is_acknowledged_and_not_stored(store, bucket, data):
    assert deliver(store, data).status_code == 200
    assert list(bucket.list_blobs()) == []


def test_storage_error_fails_the_delivery_so_pubsub_retries(store, monkeypatch):
    monkeypatch.setenv("SKYBRIDGE_BUCKET", "no-such-bucket")
    get_settings.cache_clear()
    app = functions_framework.create_app(
        target="store", source=str(FUNCTIONS / "store.py"), signature_type="cloudevent"
    )
    assert deliver(app.test_client(), canonical_json(item())).status_code == 500


# -- receipts ------------------------------------------------------------------------------


@pytest.fixture
def receipts(pubsub_host, monkeypatch, bucket):
    """A receipts topic with a pull subscription, and `store` configured to publish there."""
    with pulled_topic(pubsub_host, monkeypatch, "r") as made:
        monkeypatch.setenv("SKYBRIDGE_RECEIPTS_TOPIC", made.topic)
        get_settings.cache_clear()
        app = functions_framework.create_app(
            target="store", source=str(FUNCTIONS / "store.py"), signature_type="cloudevent"
        )
        yield app.test_client(), made.subscriber, made.subscription
    get_settings.cache_clear()


def test_store_publishes_a_receipt_for_what_the_bucket_holds(receipts, bucket):
    store_client, subscriber, subscription = receipts
    sent = item({"caption": "héllo"})
    assert deliver(store_client, canonical_json(sent), message_id="1").status_code == 200
    assert deliver(store_client, canonical_json(sent), message_id="2").status_code == 200
    messages = pull(subscriber, subscription, 2)
    found = [Receipt.model_validate_json(m.message.data) for m in messages]
    name = object_name(sent["submission_id"], datetime.fromisoformat(sent["received_at"]))
    blob = bucket.get_blob(name)
    assert len(found) == 2  # one per delivery: the redelivery confirms again
    for receipt in found:
        assert receipt.submission_id == sent["submission_id"]
        assert receipt.object_uri == f"gs://{bucket.name}/{name}"
        assert receipt.generation == blob.generation
        assert receipt.sha256 == sent["sha256"]
    assert found[0].stored_at == found[1].stored_at
    assert {m.message.attributes["submission_id"] for m in messages} == {sent["submission_id"]}


def test_a_receipt_carries_the_hash_of_what_is_really_stored(receipts, bucket):
    """Someone wrote other content under the id first: the receipt says so (AWS rejects it)."""
    store_client, subscriber, subscription = receipts
    sent = item()
    name = object_name(sent["submission_id"], datetime.fromisoformat(sent["received_at"]))
    bucket.blob(name).upload_from_string(b'{"not": "an asset"}')
    assert deliver(store_client, canonical_json(sent)).status_code == 200
    (message,) = pull(subscriber, subscription, 1)
    receipt = Receipt.model_validate_json(message.message.data)
    assert receipt.sha256 != sent["sha256"]
    assert receipt.generation == bucket.get_blob(name).generation


# -- misconfiguration ----------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# Misspelt on purpose, written in two parts so the project's scan for unknown SKYBRIDGE_
# names (tests/runtime/test_settings.py) does not take them for mistakes.
MISSPELT_LOG_LEVEL, MISSPELT_BUCKET = "SKYBRIDGE_" + "LOG_LEVL", "SKYBRIDGE_" + "BUKET"


@pytest.mark.parametrize(
    ("target", "signature", "env"),
    [
        ("ingest", "http", {"SKYBRIDGE_TOPIC": None}),
        ("ingest", "http", {MISSPELT_LOG_LEVEL: "DEBUG"}),
        ("store", "cloudevent", {"SKYBRIDGE_BUCKET": None}),
        ("store", "cloudevent", {MISSPELT_BUCKET: "b"}),
    ],
    ids=["ingest-missing-topic", "ingest-misspelt", "store-missing-bucket", "store-misspelt"],
)
def test_a_misconfigured_function_answers_503_and_logs_one_line_naming_the_setting(
    target, signature, env, monkeypatch, gcs_url
):
    """A bad setting is the function's fault, not the caller's: 503 problem+json (the relay
    retries, Pub/Sub redelivers: nothing is lost) and one log line naming the variable, no
    traceback."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_url)
    monkeypatch.setenv("SKYBRIDGE_TOPIC", f"projects/{PROJECT}/topics/t")
    monkeypatch.setenv("SKYBRIDGE_BUCKET", "b")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    records = Records()
    logger = logging.getLogger(f"skybridge.{target}")
    logger.addHandler(records)
    try:
        app = functions_framework.create_app(
            target=target, source=str(FUNCTIONS / f"{target}.py"), signature_type=signature
        )
        client = app.test_client()
        if target == "ingest":
            response = client.post("/", json={"items": [item()]})
        else:
            response = deliver(client, canonical_json(item()))
    finally:
        logger.removeHandler(records)
        get_settings.cache_clear()
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "misconfigured" in response.get_json()["detail"]
    (record,) = [r for r in records.records if getattr(r, "event", "") == "function.misconfigured"]
    assert next(iter(env)) in record.getMessage()
    assert record.exc_info is None
