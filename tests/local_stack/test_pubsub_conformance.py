"""Conformance of our Pub/Sub emulator, checked with the real google-cloud-pubsub clients.

Every test runs against our emulator and, wherever `gcloud beta emulators pubsub` is
installed, against Google's own emulator too, so we know ours behaves like theirs. The
clients find either emulator the way applications do: through PUBSUB_EMULATOR_HOST.
Where Google's emulator departs from the real service, the test says what was measured
and runs against ours only.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1

from local_stack.ports import free_port
from local_stack.processes import tcp_ready
from local_stack.pubsub import PubSubEmulator

PROJECT = "conformance"

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:The return_immediately flag is deprecated"),
]


@dataclass(frozen=True)
class Emulator:
    kind: str  # "ours" or "google"
    host: str

    def only_ours(self, reason: str) -> None:
        """Skips a case that Google's emulator does not share with the real service or us."""
        if self.kind != "ours":
            pytest.skip(f"ours only: {reason}")


def _start_googles(data_dir) -> tuple[str, subprocess.Popen]:
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud is not installed, so Google's emulator is not available")
    port = free_port()
    process = subprocess.Popen(
        ["gcloud", "beta", "emulators", "pubsub", "start",
         f"--host-port=127.0.0.1:{port}", f"--data-dir={data_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    ready, deadline = tcp_ready(port), time.monotonic() + 60
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_googles(process)
            pytest.skip(
                "gcloud has no pubsub-emulator component "
                "(gcloud components install pubsub-emulator beta)"
            )
        time.sleep(0.2)
    return f"127.0.0.1:{port}", process


def _stop_googles(process: subprocess.Popen) -> None:
    # gcloud runs the Java emulator as a child: signal the whole session.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@pytest.fixture(scope="session", params=["ours", "google"])
def emulator(request, tmp_path_factory):
    if request.param == "ours":
        ours = PubSubEmulator()
        port = ours.start()
        try:
            yield Emulator("ours", f"127.0.0.1:{port}")
        finally:
            ours.stop()
        return
    host, process = _start_googles(tmp_path_factory.mktemp("pubsub-google"))
    try:
        yield Emulator("google", host)
    finally:
        _stop_googles(process)


@pytest.fixture(scope="session")
def clients(emulator):
    with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": emulator.host}):
        publisher = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
        subscriber = pubsub_v1.SubscriberClient()
    try:
        yield publisher, subscriber
    finally:
        publisher.stop()
        subscriber.close()


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


def nothing_left(subscriber, subscription: str) -> bool:
    response = subscriber.pull(
        subscription=subscription, max_messages=5, return_immediately=True, timeout=5
    )
    return len(response.received_messages) == 0


def nack(subscriber, subscription: str, message) -> None:
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=0
    )


# -- topics and subscriptions -----------------------------------------------------------------


def test_topic_lifecycle(clients):
    publisher, _ = clients
    name = unique("topics")
    assert publisher.create_topic(name=name).name == name
    assert publisher.get_topic(topic=name).name == name
    assert name in [t.name for t in publisher.list_topics(project=f"projects/{PROJECT}")]
    publisher.delete_topic(topic=name)
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=name)
    assert name not in [t.name for t in publisher.list_topics(project=f"projects/{PROJECT}")]


def test_topic_lists_its_subscriptions(clients, topic):
    publisher, subscriber = clients
    names = {subscribe(subscriber, topic), subscribe(subscriber, topic)}
    assert set(publisher.list_topic_subscriptions(topic=topic)) == names


def test_creating_what_exists_is_already_exists(clients, topic):
    publisher, subscriber = clients
    with pytest.raises(exceptions.AlreadyExists):
        publisher.create_topic(name=topic)
    name = subscribe(subscriber, topic)
    with pytest.raises(exceptions.AlreadyExists):
        subscriber.create_subscription(name=name, topic=topic)


def test_missing_topics_and_subscriptions_are_not_found(clients):
    publisher, subscriber = clients
    missing_topic, missing_subscription = unique("topics"), unique("subscriptions")
    with pytest.raises(exceptions.NotFound):
        subscribe(subscriber, missing_topic)
    with pytest.raises(exceptions.NotFound):
        publisher.delete_topic(topic=missing_topic)
    with pytest.raises(exceptions.NotFound):
        publisher.publish(missing_topic, b"lost").result(timeout=30)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=missing_subscription)
    with pytest.raises(exceptions.NotFound):
        subscriber.delete_subscription(subscription=missing_subscription)


def test_malformed_requests_are_invalid_argument(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    with pytest.raises(exceptions.InvalidArgument):
        publisher.create_topic(name="projects/p/topics/1-starts-with-a-digit")
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.get_subscription(subscription="projects/p/subscriptions/1-digit-first")
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.acknowledge(subscription=subscription, ack_ids=["not-an-ack-id"])
    with pytest.raises(exceptions.InvalidArgument):
        subscriber.modify_ack_deadline(
            subscription=subscription, ack_ids=["not-an-ack-id"], ack_deadline_seconds=601
        )
    with pytest.raises(exceptions.InvalidArgument):
        publisher.publish(topic, b"").result(timeout=30)


def test_ack_deadline_outside_10_to_600_is_invalid(clients, topic, emulator):
    emulator.only_ours("measured: Google's emulator accepts ack_deadline_seconds=5")
    _, subscriber = clients
    with pytest.raises(exceptions.InvalidArgument):
        subscribe(subscriber, topic, ack_deadline_seconds=5)
    with pytest.raises(exceptions.InvalidArgument):
        subscribe(subscriber, topic, ack_deadline_seconds=601)


def test_max_delivery_attempts_below_5_is_invalid(clients, topic, emulator):
    emulator.only_ours("measured: Google's emulator answers OUT_OF_RANGE to 4 attempts")
    _, subscriber = clients
    with pytest.raises(exceptions.InvalidArgument):
        subscribe(
            subscriber,
            topic,
            dead_letter_policy={"dead_letter_topic": topic, "max_delivery_attempts": 4},
        )


def test_subscription_keeps_its_settings(clients, topic):
    publisher, subscriber = clients
    dead_topic = publisher.create_topic(name=unique("topics")).name
    name = subscribe(
        subscriber,
        topic,
        ack_deadline_seconds=42,
        retry_policy={"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 30}},
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 7},
        push_config={"push_endpoint": "http://127.0.0.1:9/never"},
    )
    got = subscriber.get_subscription(subscription=name)
    assert got.topic == topic
    assert got.ack_deadline_seconds == 42
    assert got.retry_policy.minimum_backoff.total_seconds() == 1
    assert got.retry_policy.maximum_backoff.total_seconds() == 30
    assert got.dead_letter_policy.dead_letter_topic == dead_topic
    assert got.dead_letter_policy.max_delivery_attempts == 7
    assert got.push_config.push_endpoint == "http://127.0.0.1:9/never"
    listed = subscriber.list_subscriptions(project=f"projects/{PROJECT}")
    assert name in [s.name for s in listed]
    subscriber.delete_subscription(subscription=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=name)


def test_subscription_defaults(clients, topic):
    publisher, subscriber = clients
    dead_topic = publisher.create_topic(name=unique("topics")).name
    name = subscribe(subscriber, topic, dead_letter_policy={"dead_letter_topic": dead_topic})
    got = subscriber.get_subscription(subscription=name)
    assert got.ack_deadline_seconds == 10
    assert got.dead_letter_policy.max_delivery_attempts == 5


def test_update_subscription_changes_the_masked_fields_only(clients, topic):
    _, subscriber = clients
    name = subscribe(subscriber, topic, ack_deadline_seconds=20)
    updated = subscriber.update_subscription(
        subscription={
            "name": name,
            "ack_deadline_seconds": 30,
            "push_config": {"push_endpoint": "http://127.0.0.1:9/x"},
        },
        update_mask={"paths": ["ack_deadline_seconds"]},
    )
    assert updated.ack_deadline_seconds == 30
    got = subscriber.get_subscription(subscription=name)
    assert got.ack_deadline_seconds == 30
    assert got.push_config.push_endpoint == ""


def test_modify_push_config_switches_to_push(clients, topic):
    _, subscriber = clients
    name = subscribe(subscriber, topic)
    subscriber.modify_push_config(
        subscription=name, push_config={"push_endpoint": "http://127.0.0.1:9/x"}
    )
    assert subscriber.get_subscription(subscription=name).push_config.push_endpoint == (
        "http://127.0.0.1:9/x"
    )


def test_deleting_a_topic_detaches_its_subscriptions(clients, topic):
    publisher, subscriber = clients
    name = subscribe(subscriber, topic)
    publisher.delete_topic(topic=topic)
    assert subscriber.get_subscription(subscription=name).topic == "_deleted-topic_"


# -- publish and pull -------------------------------------------------------------------------


def test_publish_assigns_unique_ids_and_keeps_order(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic, enable_message_ordering=True)
    futures = [publisher.publish(topic, f"m{i}".encode(), ordering_key="k") for i in range(20)]
    ids = [future.result(timeout=10) for future in futures]
    assert len(set(ids)) == 20
    received = []
    deadline = time.monotonic() + 15
    while len(received) < 20 and time.monotonic() < deadline:
        batch = subscriber.pull(subscription=subscription, max_messages=20, timeout=5)
        received += batch.received_messages
        if batch.received_messages:
            ack_ids = [m.ack_id for m in batch.received_messages]
            subscriber.acknowledge(subscription=subscription, ack_ids=ack_ids)
    assert [m.message.message_id for m in received] == ids
    assert [m.message.data for m in received] == [f"m{i}".encode() for i in range(20)]
    assert {m.message.ordering_key for m in received} == {"k"}


def test_pull_delivers_data_attributes_and_publish_time(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    before = time.time()
    message_id = publisher.publish(topic, b"payload", kind="test").result(timeout=10)
    (received,) = pull(subscriber, subscription, 1)
    assert received.message.message_id == message_id
    assert received.message.data == b"payload"
    assert dict(received.message.attributes) == {"kind": "test"}
    assert abs(received.message.publish_time.timestamp() - before) < 5
    assert received.delivery_attempt == 0  # counted only with a dead-letter policy


def test_every_subscription_gets_every_message(clients, topic):
    publisher, subscriber = clients
    first, second = subscribe(subscriber, topic), subscribe(subscriber, topic)
    message_id = publisher.publish(topic, b"fan out").result(timeout=10)
    assert [m.message.message_id for m in pull(subscriber, first, 1)] == [message_id]
    assert [m.message.message_id for m in pull(subscriber, second, 1)] == [message_id]


def test_acknowledged_messages_are_not_redelivered(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    publisher.publish(topic, b"once").result(timeout=10)
    (message,) = pull(subscriber, subscription, 1)
    subscriber.acknowledge(subscription=subscription, ack_ids=[message.ack_id])
    subscriber.modify_ack_deadline(  # an ack id that is spent is ignored, not an error
        subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=0
    )
    assert nothing_left(subscriber, subscription)


def test_nack_redelivers(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    publisher.publish(topic, b"again").result(timeout=10)
    (first,) = pull(subscriber, subscription, 1)
    nack(subscriber, subscription, first)
    (second,) = pull(subscriber, subscription, 1)
    assert second.message.message_id == first.message.message_id
    assert second.ack_id != first.ack_id


def test_expired_ack_deadline_redelivers(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    publisher.publish(topic, b"slow consumer").result(timeout=10)
    (first,) = pull(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    assert nothing_left(subscriber, subscription)  # still leased
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
        future.result(timeout=10)
    assert sorted(got) == [f"s{i}".encode() for i in range(5)]
    assert nothing_left(subscriber, subscription)


def test_streaming_pull_redelivers_a_nacked_message(clients, topic):
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic)
    seen: list[str] = []
    done = threading.Event()

    def callback(message) -> None:
        seen.append(message.message_id)
        if len(seen) == 1:
            message.nack()
        else:
            message.ack()
            done.set()

    future = subscriber.subscribe(subscription, callback)
    try:
        publisher.publish(topic, b"nacked once").result(timeout=10)
        assert done.wait(20), f"{len(seen)} deliveries"
    finally:
        future.cancel()
        future.result(timeout=10)
    assert len(seen) == 2
    assert seen[0] == seen[1]


# -- push -------------------------------------------------------------------------------------


class PushEndpoint:
    """A push endpoint on loopback: answers `statuses` in turn (then 204), records requests."""

    def __init__(self, statuses: tuple[int, ...] = (), delay: float = 0.0) -> None:
        self.requests: list[tuple[float, dict, dict]] = []  # (arrival, body, headers)
        self.statuses = list(statuses)
        self.acknowledged = threading.Event()
        self.in_flight = self.most_in_flight = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.requests.append((time.monotonic(), body, dict(self.headers)))
                    status = outer.statuses.pop(0) if outer.statuses else 204
                    outer.in_flight += 1
                    outer.most_in_flight = max(outer.most_in_flight, outer.in_flight)
                time.sleep(delay)
                with lock:
                    outer.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if status < 300:
                    outer.acknowledged.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/push"

    @property
    def bodies(self) -> list[dict]:
        return [body for _, body, _ in self.requests]

    def gaps(self) -> list[float]:
        times = [arrival for arrival, _, _ in self.requests]
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    def wait_for(self, count: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.requests) >= count

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_endpoint():
    """Makes push endpoints (`push_endpoint(statuses=(500,))`) and closes them afterwards."""
    made: list[PushEndpoint] = []

    def make(**options) -> PushEndpoint:
        made.append(PushEndpoint(**options))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def test_push_delivers_the_push_json_format(clients, topic, push_endpoint):
    endpoint = push_endpoint()
    publisher, subscriber = clients
    subscription = subscribe(subscriber, topic, push_config={"push_endpoint": endpoint.url})
    message_id = publisher.publish(topic, b"pushed", kind="test").result(timeout=10)
    assert endpoint.acknowledged.wait(20)
    (_, body, headers), *_ = endpoint.requests
    assert headers["Content-Type"].startswith("application/json")
    assert body["subscription"] == subscription
    message = body["message"]
    assert base64.b64decode(message["data"]) == b"pushed"
    assert message["attributes"] == {"kind": "test"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"] == message["publish_time"]
    assert datetime.fromisoformat(message["publishTime"]).tzinfo is not None
    assert "deliveryAttempt" not in body  # only with a dead-letter policy
    time.sleep(0.5)
    assert len(endpoint.requests) == 1  # a 2xx acknowledged it


def test_push_retries_with_growing_backoff(clients, topic, push_endpoint):
    endpoint = push_endpoint(statuses=(500, 503))
    publisher, subscriber = clients
    retry = {"minimum_backoff": {"nanos": 200_000_000}, "maximum_backoff": {"seconds": 5}}
    subscribe(subscriber, topic, push_config={"push_endpoint": endpoint.url}, retry_policy=retry)
    publisher.publish(topic, b"flaky").result(timeout=10)
    assert endpoint.acknowledged.wait(30)
    assert len(endpoint.requests) == 3
    assert len({body["message"]["messageId"] for body in endpoint.bodies}) == 1
    first, second = endpoint.gaps()
    assert first >= 0.15
    assert second > first


def test_push_backoff_stays_within_the_maximum(clients, topic, push_endpoint, emulator):
    emulator.only_ours(
        "measured: Google's emulator ignores the retry policy's bounds for push "
        "(0.2 s-1 s asked, retries came 1.0 s then 2.7 s apart)"
    )
    endpoint = push_endpoint(statuses=(500,) * 6)
    publisher, subscriber = clients
    retry = {"minimum_backoff": {"nanos": 100_000_000}, "maximum_backoff": {"nanos": 300_000_000}}
    subscribe(subscriber, topic, push_config={"push_endpoint": endpoint.url}, retry_policy=retry)
    publisher.publish(topic, b"flaky").result(timeout=10)
    assert endpoint.acknowledged.wait(20)
    gaps = endpoint.gaps()
    assert len(gaps) == 6
    assert all(0.08 <= gap <= 0.6 for gap in gaps), gaps
    assert gaps[0] < gaps[1]


def test_push_delivers_concurrently_within_a_bound(clients, topic, push_endpoint, emulator):
    emulator.only_ours("the bound of 8 pushes in flight per subscription is our design")
    endpoint = push_endpoint(delay=0.3)
    publisher, subscriber = clients
    subscribe(subscriber, topic, push_config={"push_endpoint": endpoint.url})
    ids = [publisher.publish(topic, f"c{i}".encode()) for i in range(30)]
    ids = {future.result(timeout=10) for future in ids}
    assert endpoint.wait_for(30, 20)
    time.sleep(0.5)
    assert sorted(body["message"]["messageId"] for body in endpoint.bodies) == sorted(ids)
    assert 2 <= endpoint.most_in_flight <= 8


# -- dead-lettering ---------------------------------------------------------------------------


def test_pulled_messages_are_dead_lettered_after_max_delivery_attempts(clients, topic):
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
        nack(subscriber, source, message)
    assert attempts == [1, 2, 3, 4, 5]
    # Google's emulator forwards when the next delivery is due; ours as the fifth fails.
    assert nothing_left(subscriber, source)
    (dead_lettered,) = pull(subscriber, dead, 1)
    assert dead_lettered.message.data == b"poison"
    attributes = dict(dead_lettered.message.attributes)
    assert attributes.pop("CloudPubSubDeadLetterSourceTopicPublishTime")
    assert attributes == {
        "id": "7",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceSubscription": source.split("/")[-1],
        "CloudPubSubDeadLetterSourceSubscriptionProject": PROJECT,
    }


def dead_lettering_push_subscription(clients, topic: str, endpoint_url: str) -> str:
    """A push subscription that dead-letters after 5 attempts; returns the dead-letter one."""
    publisher, subscriber = clients
    dead_topic = publisher.create_topic(name=unique("topics")).name
    dead = subscribe(subscriber, dead_topic)
    subscribe(
        subscriber,
        topic,
        push_config={"push_endpoint": endpoint_url},
        retry_policy={
            "minimum_backoff": {"nanos": 50_000_000},
            "maximum_backoff": {"nanos": 100_000_000},
        },
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
    )
    return dead


def test_pushed_messages_are_dead_lettered_after_max_delivery_attempts(
    clients, topic, push_endpoint
):
    # Google's emulator backs off ~3 s between these attempts whatever the policy says.
    endpoint = push_endpoint(statuses=(500,) * 10)
    publisher, subscriber = clients
    dead = dead_lettering_push_subscription(clients, topic, endpoint.url)
    publisher.publish(topic, b"poison", id="8").result(timeout=10)
    (dead_lettered,) = pull(subscriber, dead, 1, seconds=30)
    assert len(endpoint.requests) == 5
    assert len({body["message"]["messageId"] for body in endpoint.bodies}) == 1
    assert dead_lettered.message.data == b"poison"
    assert dead_lettered.message.attributes["id"] == "8"
    assert dead_lettered.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"


def test_push_bodies_count_delivery_attempts_under_a_dead_letter_policy(
    clients, topic, push_endpoint, emulator
):
    emulator.only_ours("measured: Google's emulator leaves deliveryAttempt out of push bodies")
    endpoint = push_endpoint(statuses=(500, 500))
    dead_lettering_push_subscription(clients, topic, endpoint.url)
    publisher, _ = clients
    publisher.publish(topic, b"third time lucky").result(timeout=10)
    assert endpoint.acknowledged.wait(20)
    assert [body["deliveryAttempt"] for body in endpoint.bodies] == [1, 2, 3]


# -- running standalone -----------------------------------------------------------------------


def test_standalone_emulator_serves_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack.pubsub", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:")
        host = line.removeprefix("listening on ")
        with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": host}):
            publisher = pubsub_v1.PublisherClient()
        name = unique("topics")
        assert publisher.create_topic(name=name, timeout=10).name == name
        publisher.stop()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
