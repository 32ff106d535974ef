"""The relay's receipts consumer with the real Pub/Sub client on the emulator, on SQLite
and MariaDB: it acknowledges only what it committed, so nothing is lost or counted twice."""

from __future__ import annotations

import time

import pytest

from runtime.envelope import Receipt
from runtime.observability import Metrics
from runtime.relay.receipts import ReceiptConsumer
from runtime.settings import Settings
from tests.runtime.conftest import pulled_topic
from tests.runtime.test_receipts import accept, forward_all, receipt_for, status

ACK_DEADLINE = 10  # the smallest Pub/Sub accepts


class Recorded(Metrics):
    def __init__(self) -> None:
        super().__init__("none", "", "relay")
        self.sums: dict[str, float] = {}

    def emit(self, values, **properties) -> None:
        for name, (value, _) in values.items():
            total = sum(value) if isinstance(value, list) else value
            self.sums[name] = self.sums.get(name, 0) + total


class DiesBeforeAck:
    """The process died after its commit and before the acknowledgement reached Pub/Sub."""

    def __init__(self, subscriber) -> None:
        self.subscriber = subscriber

    def pull(self, **kwargs):
        return self.subscriber.pull(**kwargs)

    def acknowledge(self, **_):
        raise SystemExit("killed")


@pytest.fixture
def receipts_topic(pubsub_host, monkeypatch):
    with pulled_topic(
        pubsub_host, monkeypatch, "receipts", ack_deadline_seconds=ACK_DEADLINE
    ) as made:
        yield made.publisher, made.topic, made.subscriber, made.subscription


def consumer(engine, subscription: str, subscriber, metrics: Metrics) -> ReceiptConsumer:
    settings = Settings(receipts_subscription=subscription, receipts_pull_timeout=5)
    return ReceiptConsumer(engine, settings, subscriber, metrics=metrics)


def publish(publisher, topic: str, receipts: list[Receipt | bytes]) -> None:
    for receipt in receipts:
        data = receipt if isinstance(receipt, bytes) else receipt.model_dump_json().encode()
        publisher.publish(topic, data).result(timeout=10)


def drain(consumer_: ReceiptConsumer, expected: int, timeout: float = 30) -> int:
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < expected and time.monotonic() < deadline:
        seen += consumer_.run_once()
    return seen


def test_receipts_are_applied_then_acknowledged(client, engine, receipts_topic):
    publisher, topic, subscriber, subscription = receipts_topic
    items = accept(client, 3)
    forward_all(engine)
    forged = receipt_for(items[2], sha256="e" * 64)
    publish(publisher, topic, [receipt_for(items[0]), receipt_for(items[1]), forged, b"junk"])
    metrics = Recorded()
    assert drain(consumer(engine, subscription, subscriber, metrics), 4) == 4
    assert [status(client, item)["status"] for item in items] == ["stored", "stored", "forwarded"]
    assert metrics.sums["Stored"] == 2
    assert metrics.sums["ReceiptMismatch"] == 1
    # Everything was acknowledged, the junk too: nothing comes back.
    response = subscriber.pull(subscription=subscription, max_messages=10, timeout=3)
    assert not response.received_messages


def test_a_consumer_killed_before_its_ack_loses_nothing_and_counts_once(
    client, engine, receipts_topic
):
    publisher, topic, subscriber, subscription = receipts_topic
    items = accept(client, 4)
    forward_all(engine)
    publish(publisher, topic, [receipt_for(item) for item in items])
    metrics = Recorded()
    dying = consumer(engine, subscription, DiesBeforeAck(subscriber), metrics)
    with pytest.raises(SystemExit):
        while True:
            dying.run_once()
    committed = sum(status(client, item)["status"] == "stored" for item in items)
    # A second consumer gets the unacknowledged batch again after the ack deadline.
    again = consumer(engine, subscription, subscriber, metrics)
    assert drain(again, len(items), timeout=ACK_DEADLINE * 3) == len(items)
    assert {status(client, item)["status"] for item in items} == {"stored"}
    assert committed >= 1
    assert metrics.sums["Stored"] == len(items)  # the redelivered ones were not counted again
    assert metrics.sums.get("ReceiptDuplicate", 0) == committed
