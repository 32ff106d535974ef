from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from google.cloud import pubsub_v1

from runtime.api import create_app
from runtime.api.services import services
from runtime.settings import get_settings
from smoke.storage import emulator_client as storage_client

FUNCTIONS = Path(__file__).resolve().parents[2] / "runtime" / "functions"
PROJECT = "skybridge-test"


@pytest.fixture
def app(database_url: str):
    app = create_app({"database_url": database_url, "migrate_on_start": True, "metrics": "none"})
    yield app
    services(app).engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def engine(app):
    return services(app).engine


# -- the two functions under functions-framework, on the emulators ---------------------------


@dataclass(frozen=True)
class PulledTopic:
    """A topic on the emulator with one pull subscription, and the clients for both."""

    publisher: pubsub_v1.PublisherClient
    topic: str
    subscriber: pubsub_v1.SubscriberClient
    subscription: str


@contextmanager
def pulled_topic(
    pubsub_host: str, monkeypatch, prefix: str, **subscription: Any
) -> Iterator[PulledTopic]:
    """A uniquely named topic and pull subscription (`subscription`: more of its fields,
    e.g. ack_deadline_seconds), both deleted afterwards."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    topic = publisher.create_topic(name=f"projects/{PROJECT}/topics/{name}").name
    pulled = subscriber.create_subscription(
        request={"name": f"projects/{PROJECT}/subscriptions/{name}", "topic": topic} | subscription
    ).name
    try:
        yield PulledTopic(publisher, topic, subscriber, pulled)
    finally:
        subscriber.delete_subscription(subscription=pulled)
        publisher.delete_topic(topic=topic)


@pytest.fixture
def topic(pubsub_host, monkeypatch):
    with pulled_topic(pubsub_host, monkeypatch, "t") as made:
        monkeypatch.setenv("SKYBRIDGE_TOPIC", made.topic)
        get_settings.cache_clear()
        yield made.topic, made.subscription, made.subscriber
    get_settings.cache_clear()


@pytest.fixture
def ingest(topic):
    app = functions_framework.create_app(target="ingest", source=str(FUNCTIONS / "ingest.py"))
    return app.test_client()


@pytest.fixture
def bucket(gcs_url, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_url)
    name = f"b-{uuid.uuid4().hex[:10]}"
    bucket = storage_client(gcs_url).create_bucket(name)
    monkeypatch.setenv("SKYBRIDGE_BUCKET", name)
    get_settings.cache_clear()
    yield bucket
    get_settings.cache_clear()


@pytest.fixture
def store(bucket):
    app = functions_framework.create_app(
        target="store", source=str(FUNCTIONS / "store.py"), signature_type="cloudevent"
    )
    return app.test_client()
