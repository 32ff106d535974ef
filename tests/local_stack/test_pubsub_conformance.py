"""Conformance of our Pub/Sub emulator, checked with the real google-cloud-pubsub clients.

Every test runs against our emulator and, wherever `gcloud beta emulators pubsub` is
installed, against Google's own emulator too: so we know ours behaves like theirs.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from local_stack.ports import free_port
from local_stack.processes import tcp_ready
from local_stack.pubsub_emulator import PubSubEmulator

PROJECT = "conformance"


def _google_emulator():
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud is not installed: Google's emulator is not available here")
    port = free_port()
    data = tempfile.mkdtemp(prefix="pubsub-google-")
    process = subprocess.Popen(
        ["gcloud", "beta", "emulators", "pubsub", "start",
         f"--host-port=127.0.0.1:{port}", f"--data-dir={data}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    ready = tcp_ready(port)
    deadline = time.monotonic() + 60
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.skip("gcloud has no pubsub-emulator component (gcloud components install)")
        time.sleep(0.2)
    return f"127.0.0.1:{port}", process


@pytest.fixture(scope="module", params=["ours", "google"])
def host(request):
    if request.param == "ours":
        emulator = PubSubEmulator()
        port = emulator.start()
        yield f"127.0.0.1:{port}"
        emulator.stop()
        return
    address, process = _google_emulator()
    yield address
    import os
    import signal

    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


@pytest.fixture
def ours(host, request):
    """Skip a case where Google's emulator differs from the real service (each measured)."""
    if request.node.callspec.params["host"] != "ours":
        pytest.skip("Google's emulator differs from the real service here (see the test)")


@pytest.fixture(scope="module")
def clients(host):
    publisher = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    )
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    )
    return publisher, subscriber


def unique(kind: str) -> str:
    return f"projects/{PROJECT}/{kind}/t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(clients):
    publisher, _ = clients
    return publisher.create_topic(name=unique("topics")).name


def subscribe(subscriber, topic: str, **options) -> str:
    return subscriber.create_subscription(
        request={"name": unique("subscriptions"), "topic": topic, **options}
    ).name


def pull(subscriber, subscription: str, want: int, seconds: float = 10) -> list:
    received, deadline = [], time.monotonic() + seconds
    while len(received) < want and time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=want, timeout=5)
        received += response.received_messages
    return received


def test_topic_lifecycle(clients):
    publisher, _ = clients
    name = unique("topics")
    assert publisher.create_topic(name=name).name == name
    assert publisher.get_topic(topic=name).name == name
    assert name in [t.name for t in publisher.list_topics(project=f"projects/{PROJECT}")]
    publisher.delete_topic(topic=name)
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=name)


def test_errors_carry_googles_status_codes(clients, topic):
    publisher, subscriber = clients
    with pytest.raises(exceptions.AlreadyExists):
        publisher.create_topic(name=topic)
    with pytest.raises(exceptions.NotFound):
        subscribe(subscriber, unique("topics"))
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=unique("subscriptions"))
    with pytest.raises(exceptions.InvalidArgument):
        publisher.create_topic(name="projects/p/topics/1-starts-with-a-digit")


def test_ack_deadline_outside_10_to_600_is_invalid(clients, topic, ours):
    # Measured: Google's emulator accepts 5 s; the real service refuses it, and so do we.
    _, subscriber = clients
    with pytest.raises(exceptions.InvalidArgument):
        subscribe(subscriber, topic, ack_deadline_seconds=5)


def test_subscription_keeps_its_settings(clients, topic):
    _, subscriber = clients
    name = subscribe(subscriber, topic, ack_deadline_seconds=42)
    got = subscriber.get_subscription(subscription=name)
    assert got.topic == topic
    assert got.ack_deadline_seconds == 42
    subscriber.delete_subscription(subscription=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=name)


def test_publish_assigns_unique_ids_and_pull_delivers_everything(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    futures = [publisher.publish(topic, f"m{i}".encode(), n=str(i)) for i in range(20)]
    ids = [future.result(timeout=10) for future in futures]
    assert len(set(ids)) == 20
    received = pull(subscriber, subscription, 20)
    assert sorted(m.message.data for m in received) == sorted(f"m{i}".encode() for i in range(20))
    assert {m.message.message_id for m in received} == set(ids)
    assert all(m.message.attributes["n"] == m.message.data.decode()[1:] for m in received)
    assert all(m.message.publish_time for m in received)


def test_acknowledged_messages_are_not_redelivered(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    publisher.publish(topic, b"once").result(timeout=10)
    (message,) = pull(subscriber, subscription, 1)
    subscriber.acknowledge(subscription=subscription, ack_ids=[message.ack_id])
    response = subscriber.pull(subscription=subscription, max_messages=5, timeout=5)
    assert list(response.received_messages) == []


def test_nack_redelivers(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    publisher.publish(topic, b"again").result(timeout=10)
    (first,) = pull(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=0
    )
    (second,) = pull(subscriber, subscription, 1)
    assert second.message.message_id == first.message.message_id


def test_expired_ack_deadline_redelivers(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    publisher.publish(topic, b"slow consumer").result(timeout=10)
    (first,) = pull(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    time.sleep(1.5)
    (second,) = pull(subscriber, subscription, 1, seconds=15)
    assert second.message.message_id == first.message.message_id


def test_streaming_pull_delivers_to_a_callback(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    got: list[bytes] = []
    done = threading.Event()

    def callback(message) -> None:
        got.append(message.data)
        message.ack()
        if len(got) >= 5:
            done.set()

    future = subscriber.subscribe(subscription, callback)
    try:
        for i in range(5):
            publisher.publish(topic, f"s{i}".encode())
        assert done.wait(20), f"only {len(got)} of 5 arrived"
    finally:
        future.cancel()
    assert sorted(got) == [f"s{i}".encode() for i in range(5)]


class PushEndpoint:
    """A push endpoint on loopback that fails the first `failures` deliveries."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict] = []
        self.failures = failures
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                status = 500 if len(outer.bodies) <= outer.failures else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if status == 204:
                    outer.arrived.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/push"

    def close(self) -> None:
        self.server.shutdown()


def test_push_delivers_the_push_json_format(clients, topic):
    publisher, subscriber = clients
    endpoint = PushEndpoint()
    try:
        subscription = subscribe(subscriber, topic, push_config={"push_endpoint": endpoint.url})
        message_id = publisher.publish(topic, b"pushed", kind="test").result(timeout=10)
        assert endpoint.arrived.wait(20)
    finally:
        endpoint.close()
    body = endpoint.bodies[0]
    assert body["subscription"] == subscription
    assert base64.b64decode(body["message"]["data"]) == b"pushed"
    assert body["message"]["attributes"] == {"kind": "test"}
    assert body["message"]["messageId"] == message_id
    assert body["message"]["publishTime"]


def test_push_retries_with_backoff_until_acknowledged(clients, topic):
    publisher, subscriber = clients
    endpoint = PushEndpoint(failures=2)
    retry = {"minimum_backoff": {"nanos": 200_000_000}, "maximum_backoff": {"seconds": 1}}
    try:
        subscribe(
            subscriber, topic, push_config={"push_endpoint": endpoint.url}, retry_policy=retry
        )
        publisher.publish(topic, b"flaky").result(timeout=10)
        assert endpoint.arrived.wait(30)
    finally:
        endpoint.close()
    assert len(endpoint.bodies) == 3
    assert len({b["message"]["messageId"] for b in endpoint.bodies}) == 1


def test_dead_lettering_after_max_delivery_attempts(clients, topic, ours):
    # Measured: Google's emulator counts delivery attempts but never forwards to the
    # dead-letter topic (the dead-letter subscription stays empty).
    publisher, subscriber = clients
    dead_topic = publisher.create_topic(name=unique("topics")).name
    dead = subscribe(subscriber, dead_topic)
    source = subscribe(
        subscriber,
        topic,
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
    )
    publisher.publish(topic, b"poison", id="7").result(timeout=10)
    attempts = []
    for _ in range(5):
        (message,) = pull(subscriber, source, 1)
        attempts.append(message.delivery_attempt)
        subscriber.modify_ack_deadline(
            subscription=source, ack_ids=[message.ack_id], ack_deadline_seconds=0
        )
    assert attempts == [1, 2, 3, 4, 5]
    (dead_lettered,) = pull(subscriber, dead, 1)
    assert dead_lettered.message.data == b"poison"
    assert dead_lettered.message.attributes["id"] == "7"
    assert dead_lettered.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    response = subscriber.pull(subscription=source, max_messages=5, timeout=5)
    assert list(response.received_messages) == []
