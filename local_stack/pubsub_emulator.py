"""A Pub/Sub emulator that the real google-cloud-pubsub clients use via PUBSUB_EMULATOR_HOST.

gRPC, in one process: topics, subscriptions (ack deadline, retry policy, dead-letter policy,
push config, message ordering), Publish, Pull, StreamingPull, Acknowledge, ModifyAckDeadline,
redelivery after the ack deadline, push delivery in Pub/Sub's push JSON format with
exponential backoff between the retry policy's bounds, and dead-lettering after
`max_delivery_attempts`.

google-cloud-pubsub ships no servicer classes, so the services are generic gRPC handlers
over the proto-plus types. Errors carry the status codes Google's service uses
(NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT), and anything unexpected is INTERNAL, never
UNKNOWN: the client retries UNKNOWN for a minute.

    python -m local_stack.pubsub_emulator --port 8085
"""

from __future__ import annotations

import argparse
import base64
import itertools
import logging
import math
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import requests
from google.protobuf import empty_pb2
from google.pubsub_v1 import types

log = logging.getLogger("local_stack.pubsub")

TOPIC_RE = re.compile(r"^projects/[^/]+/topics/[A-Za-z][\w.~+%-]{2,254}$")
SUBSCRIPTION_RE = re.compile(r"^projects/[^/]+/subscriptions/[A-Za-z][\w.~+%-]{2,254}$")
DEFAULT_ACK_DEADLINE = 10
DEFAULT_MIN_BACKOFF = 10.0  # a retry policy's bounds when it leaves them unset
DEFAULT_MAX_BACKOFF = 600.0
PUSH_MIN_BACKOFF = 0.1  # a push subscription without a retry policy: Google's push backoff
PUSH_MAX_BACKOFF = 60.0
PUSH_CONCURRENCY = 8  # deliveries in flight per push subscription
PULL_WAIT = 2.0  # how long a Pull without return_immediately waits for a first message
DELETED_TOPIC = "_deleted-topic_"
IMMUTABLE = {"name", "topic", "enable_message_ordering", "filter"}


class RpcError(Exception):
    """A failure with the gRPC status code the client should see."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _bounds(policy: types.RetryPolicy) -> tuple[float, float]:
    """A retry policy's minimum and maximum backoff, Google's defaults where unset."""
    low = policy.minimum_backoff.total_seconds() if "minimum_backoff" in policy else None
    high = policy.maximum_backoff.total_seconds() if "maximum_backoff" in policy else None
    return (
        DEFAULT_MIN_BACKOFF if low is None else low,
        DEFAULT_MAX_BACKOFF if high is None else high,
    )


def _timestamp(moment: datetime) -> str:
    """RFC 3339 with milliseconds and Z, as Google writes publish times."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Pending:
    """One message waiting in one subscription."""

    message: types.PubsubMessage
    ack_id: str = ""
    attempts: int = 0
    available_at: float = 0.0  # not before this (backoff after a failed delivery)
    leased_until: float = 0.0  # 0: not out for delivery; inf: a push in flight


@dataclass
class Subscription:
    proto: types.Subscription
    queue: dict[str, Pending] = field(default_factory=dict)  # message id → pending, in order
    pushing: int = 0  # push deliveries in flight

    @property
    def name(self) -> str:
        return self.proto.name

    @property
    def push_endpoint(self) -> str:
        return self.proto.push_config.push_endpoint

    @property
    def max_attempts(self) -> int:
        """0 without a dead-letter policy: attempts are then not counted for the client."""
        policy = self.proto.dead_letter_policy
        return policy.max_delivery_attempts if policy.dead_letter_topic else 0

    def backoff(self, attempts: int) -> float:
        """Exponential between the retry policy's bounds; without one, pull retries at once."""
        if "retry_policy" in self.proto:
            low, high = _bounds(self.proto.retry_policy)
        elif self.push_endpoint:
            low, high = PUSH_MIN_BACKOFF, PUSH_MAX_BACKOFF
        else:
            return 0.0
        return min(high, low * 2 ** max(attempts - 1, 0))


def _validate_subscription(proto: types.Subscription) -> None:
    """Fills Google's defaults in, or raises INVALID_ARGUMENT as Google does."""
    deadline = proto.ack_deadline_seconds or DEFAULT_ACK_DEADLINE
    if not 10 <= deadline <= 600:
        raise _invalid("The value for ack_deadline_seconds must be between 10 and 600")
    proto.ack_deadline_seconds = deadline
    policy = proto.dead_letter_policy
    if policy.dead_letter_topic:
        attempts = policy.max_delivery_attempts or 5
        if not 5 <= attempts <= 100:
            raise _invalid("max_delivery_attempts must be between 5 and 100")
        policy.max_delivery_attempts = attempts
    if "retry_policy" in proto:
        low, high = _bounds(proto.retry_policy)
        if not 0 <= low <= high <= 600:
            raise _invalid("retry_policy needs 0 <= minimum_backoff <= maximum_backoff <= 600s")


class Broker:
    """All state, under one lock; `changed` wakes pullers and the delivery loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.topics: dict[str, types.Topic] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._ids = itertools.count(1)

    # -- admin ----------------------------------------------------------------------------

    def create_topic(self, topic: types.Topic) -> types.Topic:
        if not TOPIC_RE.match(topic.name):
            raise _invalid(f"Invalid [topics] name: ({topic.name})")
        with self.lock:
            if topic.name in self.topics:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            self.topics[topic.name] = topic
        return topic

    def _topic(self, name: str) -> types.Topic:
        if name not in self.topics:
            if not TOPIC_RE.match(name) and name != DELETED_TOPIC:
                raise _invalid(f"Invalid [topics] name: ({name})")
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Topic not found: {name}")
        return self.topics[name]

    def topic(self, name: str) -> types.Topic:
        with self.lock:
            return self._topic(name)

    def list_topics(self, project: str) -> list[types.Topic]:
        with self.lock:
            return [t for n, t in sorted(self.topics.items()) if n.startswith(f"{project}/")]

    def topic_subscriptions(self, name: str) -> list[str]:
        with self.lock:
            self._topic(name)
            return sorted(n for n, s in self.subscriptions.items() if s.proto.topic == name)

    def delete_topic(self, name: str) -> None:
        with self.lock:
            self._topic(name)
            del self.topics[name]
            for subscription in self.subscriptions.values():
                if subscription.proto.topic == name:
                    subscription.proto.topic = DELETED_TOPIC

    def create_subscription(self, proto: types.Subscription) -> types.Subscription:
        if not SUBSCRIPTION_RE.match(proto.name):
            raise _invalid(f"Invalid [subscriptions] name: ({proto.name})")
        _validate_subscription(proto)
        with self.lock:
            self._topic(proto.topic)
            if proto.dead_letter_policy.dead_letter_topic:
                self._topic(proto.dead_letter_policy.dead_letter_topic)
            if proto.name in self.subscriptions:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
            self.subscriptions[proto.name] = Subscription(proto)
            self.changed.notify_all()
        return proto

    def _subscription(self, name: str) -> Subscription:
        if name not in self.subscriptions:
            if not SUBSCRIPTION_RE.match(name):
                raise _invalid(f"Invalid [subscriptions] name: ({name})")
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Subscription does not exist: {name}")
        return self.subscriptions[name]

    def subscription(self, name: str) -> types.Subscription:
        with self.lock:
            return self._subscription(name).proto

    def list_subscriptions(self, project: str) -> list[types.Subscription]:
        with self.lock:
            return [
                s.proto
                for n, s in sorted(self.subscriptions.items())
                if n.startswith(f"{project}/")
            ]

    def delete_subscription(self, name: str) -> None:
        with self.lock:
            self._subscription(name)
            del self.subscriptions[name]

    def update_subscription(
        self, proto: types.Subscription, paths: list[str]
    ) -> types.Subscription:
        unknown = [p for p in paths if p in IMMUTABLE or p not in types.Subscription.meta.fields]
        if not paths or unknown:
            raise _invalid(f"update_mask names no field that can be updated: {unknown}")
        with self.lock:
            current = self._subscription(proto.name).proto
            updated = types.Subscription.deserialize(types.Subscription.serialize(current))
            for path in paths:
                setattr(updated, path, getattr(proto, path))
            _validate_subscription(updated)
            if updated.dead_letter_policy.dead_letter_topic:
                self._topic(updated.dead_letter_policy.dead_letter_topic)
            self.subscriptions[proto.name].proto = updated
            self.changed.notify_all()
            return updated

    def modify_push_config(self, name: str, push_config: types.PushConfig) -> None:
        with self.lock:
            self._subscription(name).proto.push_config = push_config
            self.changed.notify_all()

    # -- data -----------------------------------------------------------------------------

    def publish(self, topic: str, messages: list[types.PubsubMessage]) -> list[str]:
        if not messages:
            raise _invalid("The request contains no messages")
        if any(not m.data and not m.attributes for m in messages):
            raise _invalid("Some messages are empty: a message needs data or attributes")
        now = datetime.now(UTC)
        with self.lock:
            self._topic(topic)
            ids = [self._enqueue(topic, m, now) for m in messages]
            self.changed.notify_all()
        return ids

    def _enqueue(self, topic: str, message: types.PubsubMessage, now: datetime) -> str:
        message_id = str(next(self._ids))
        stored = types.PubsubMessage(
            data=message.data,
            attributes=dict(message.attributes),
            ordering_key=message.ordering_key,
            message_id=message_id,
            publish_time=now,
        )
        for subscription in self.subscriptions.values():
            if subscription.proto.topic == topic:
                subscription.queue[message_id] = Pending(stored)
        return message_id

    def _expire(self, subscription: Subscription, now: float) -> None:
        """Expired leases count as failed deliveries (lock held)."""
        for pending in list(subscription.queue.values()):
            if pending.leased_until and pending.leased_until <= now:
                self._nack(subscription, pending, now)

    def _lease(
        self, subscription: Subscription, limit: int, lease: float, now: float
    ) -> list[Pending]:
        """Leases out up to `limit` due messages, in publish order (lock held).

        With message ordering, a key is held back while an earlier message of it is out or
        waiting for a retry; a push delivery takes one message per key at a time.
        """
        ordered = subscription.proto.enable_message_ordering
        held: set[str] = set()
        due: list[Pending] = []
        for pending in subscription.queue.values():
            if len(due) >= limit:
                break
            key = pending.message.ordering_key if ordered else ""
            if key and key in held:
                continue
            if not pending.leased_until and pending.available_at <= now:
                due.append(pending)
                if lease == math.inf and key:
                    held.add(key)
            elif key:
                held.add(key)
        for pending in due:
            pending.attempts += 1
            pending.leased_until = now + lease
            nonce = uuid.uuid4().hex[:8]
            pending.ack_id = f"{subscription.name}#{pending.message.message_id}#{nonce}"
        return due

    def _nack(self, subscription: Subscription, pending: Pending, now: float) -> None:
        """A failed delivery: back off, or dead-letter when the attempts are used up."""
        pending.leased_until = 0.0
        pending.ack_id = ""
        exhausted = subscription.max_attempts and pending.attempts >= subscription.max_attempts
        if exhausted and self._dead_letter(subscription, pending):
            return
        pending.available_at = now + subscription.backoff(pending.attempts)

    def _dead_letter(self, subscription: Subscription, pending: Pending) -> bool:
        """Republishes to the dead-letter topic with Google's source attributes."""
        target = subscription.proto.dead_letter_policy.dead_letter_topic
        if target not in self.topics:
            log.warning("dead-letter topic %s is gone; keeping the message", target)
            return False
        original = pending.message
        _, project, _, name = subscription.name.split("/")
        attributes = dict(original.attributes) | {
            "CloudPubSubDeadLetterSourceDeliveryCount": str(pending.attempts),
            "CloudPubSubDeadLetterSourceSubscription": name,
            "CloudPubSubDeadLetterSourceSubscriptionProject": project,
            "CloudPubSubDeadLetterSourceTopicPublishTime": _timestamp(original.publish_time),
        }
        del subscription.queue[original.message_id]
        forwarded = types.PubsubMessage(data=original.data, attributes=attributes)
        self._enqueue(target, forwarded, datetime.now(UTC))
        log.info("dead-lettered message %s to %s", original.message_id, target)
        return True

    def _received(self, subscription: Subscription, pending: Pending) -> types.ReceivedMessage:
        received = types.ReceivedMessage(ack_id=pending.ack_id, message=pending.message)
        if subscription.max_attempts:
            received.delivery_attempt = pending.attempts
        return received

    def pull(
        self, name: str, limit: int, wait: float, lease: float | None = None
    ) -> list[types.ReceivedMessage]:
        deadline = time.monotonic() + wait
        with self.lock:
            while True:
                subscription = self._subscription(name)
                now = time.monotonic()
                self._expire(subscription, now)
                seconds = lease or subscription.proto.ack_deadline_seconds
                due = self._lease(subscription, limit, seconds, now)
                if due or now >= deadline:
                    return [self._received(subscription, pending) for pending in due]
                self.changed.wait(min(0.1, deadline - now))

    def _leased(self, subscription: Subscription, ack_id: str) -> Pending | None:
        """The message an ack id stands for, if it is still out under that id (lock held)."""
        owner, _, rest = ack_id.partition("#")
        message_id, _, nonce = rest.partition("#")
        if owner != subscription.name or not nonce:
            raise _invalid(f"Invalid ack id (ack_id={ack_id})")
        pending = subscription.queue.get(message_id)
        return pending if pending and pending.ack_id == ack_id else None

    def acknowledge(self, name: str, ack_ids: list[str]) -> None:
        with self.lock:
            subscription = self._subscription(name)
            for ack_id in ack_ids:
                if pending := self._leased(subscription, ack_id):
                    del subscription.queue[pending.message.message_id]
            self.changed.notify_all()

    def modify_ack_deadline(self, name: str, ack_ids: list[str], seconds: int) -> None:
        if not 0 <= seconds <= 600:
            raise _invalid("ack_deadline_seconds must be between 0 and 600")
        with self.lock:
            subscription = self._subscription(name)
            now = time.monotonic()
            for ack_id in ack_ids:
                pending = self._leased(subscription, ack_id)
                if pending is None or pending.leased_until == math.inf:
                    continue
                if seconds == 0:
                    self._nack(subscription, pending, now)
                else:
                    pending.leased_until = now + seconds
            self.changed.notify_all()

    # -- push -----------------------------------------------------------------------------

    def due_pushes(self, wait: float) -> list[tuple[Subscription, Pending]]:
        """Expires leases everywhere and leases out what push subscriptions may deliver."""
        with self.lock:
            now = time.monotonic()
            work = []
            for subscription in self.subscriptions.values():
                self._expire(subscription, now)
                room = PUSH_CONCURRENCY - subscription.pushing
                if subscription.push_endpoint and room > 0:
                    for pending in self._lease(subscription, room, math.inf, now):
                        subscription.pushing += 1
                        work.append((subscription, pending))
            if not work:
                self.changed.wait(wait)
            return work

    def settle_push(self, subscription: Subscription, pending: Pending, ok: bool) -> None:
        with self.lock:
            subscription.pushing -= 1
            if subscription.queue.get(pending.message.message_id) is pending:
                if ok:
                    del subscription.queue[pending.message.message_id]
                else:
                    self._nack(subscription, pending, time.monotonic())
            self.changed.notify_all()


def push_body(subscription: Subscription, pending: Pending) -> dict[str, Any]:
    """The JSON a push endpoint receives (both spellings of the ids, as Google sends)."""
    message = pending.message
    published = _timestamp(message.publish_time)
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": subscription.name,
    }
    if message.ordering_key:
        body["message"]["orderingKey"] = message.ordering_key
    if subscription.max_attempts:
        body["deliveryAttempt"] = pending.attempts
    return body


class Pusher:
    """Delivers push subscriptions' messages: 2xx (or 102) acknowledges, anything else nacks.

    Its loop also expires leases of pull subscriptions, so redelivery and dead-lettering
    happen on time even when nobody is pulling.
    """

    def __init__(self, broker: Broker, workers: int = 4 * PUSH_CONCURRENCY) -> None:
        self.broker = broker
        self.session = requests.Session()
        self.session.trust_env = False  # per-request proxy lookup costs more than the request
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=workers)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="push")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pusher", daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            for subscription, pending in self.broker.due_pushes(wait=0.05):
                self.pool.submit(self.deliver, subscription, pending)

    def deliver(self, subscription: Subscription, pending: Pending) -> None:
        ok = False
        try:
            response = self.session.post(
                subscription.push_endpoint,
                json=push_body(subscription, pending),
                timeout=subscription.proto.ack_deadline_seconds,
                allow_redirects=False,
            )
            ok = 200 <= response.status_code < 300 or response.status_code == 102
        except requests.RequestException as error:
            log.info("push to %s failed: %s", subscription.push_endpoint, error)
        finally:
            self.broker.settle_push(subscription, pending, ok)

    def stop(self) -> None:
        self.stopping.set()
        with self.broker.lock:
            self.broker.changed.notify_all()
        self.thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)


# -- gRPC wiring ------------------------------------------------------------------------------


def _unary(rpc: str, function: Callable, request_type: Any, response_type: Any):
    """One unary method. Our errors become their status codes; anything unexpected is
    INTERNAL, never UNKNOWN (which the client would retry for a minute)."""
    empty = response_type is empty_pb2.Empty

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            result = function(request)
        except RpcError as error:
            context.abort(error.code, str(error))
        except Exception as error:
            log.exception("%s failed", rpc)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        return empty_pb2.Empty() if empty else result

    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_type.deserialize,
        response_serializer=response_type.SerializeToString if empty else response_type.serialize,
    )


def _service(name: str, methods: dict[str, tuple], **streams: Any) -> grpc.GenericRpcHandler:
    handlers = {rpc: _unary(rpc, *spec) for rpc, spec in methods.items()}
    return grpc.method_handlers_generic_handler(name, handlers | streams)


def publisher_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def publish(request: types.PublishRequest) -> types.PublishResponse:
        ids = broker.publish(request.topic, list(request.messages))
        return types.PublishResponse(message_ids=ids)

    return _service(
        "google.pubsub.v1.Publisher",
        {
            "CreateTopic": (broker.create_topic, types.Topic, types.Topic),
            "GetTopic": (lambda r: broker.topic(r.topic), types.GetTopicRequest, types.Topic),
            "ListTopics": (
                lambda r: types.ListTopicsResponse(topics=broker.list_topics(r.project)),
                types.ListTopicsRequest,
                types.ListTopicsResponse,
            ),
            "ListTopicSubscriptions": (
                lambda r: types.ListTopicSubscriptionsResponse(
                    subscriptions=broker.topic_subscriptions(r.topic)
                ),
                types.ListTopicSubscriptionsRequest,
                types.ListTopicSubscriptionsResponse,
            ),
            "DeleteTopic": (
                lambda r: broker.delete_topic(r.topic),
                types.DeleteTopicRequest,
                empty_pb2.Empty,
            ),
            "Publish": (publish, types.PublishRequest, types.PublishResponse),
        },
    )


def _streaming_pull(broker: Broker) -> Callable:
    """One StreamingPull stream: acks and deadline changes in, batches of messages out."""

    def apply(name: str, request: types.StreamingPullRequest) -> None:
        if request.ack_ids:
            broker.acknowledge(name, list(request.ack_ids))
        pairs = zip(request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=False)
        for ack_id, seconds in pairs:
            broker.modify_ack_deadline(name, [ack_id], seconds)

    def read_rest(name: str, requests_in: Iterator, context: grpc.ServicerContext) -> None:
        try:
            for request in requests_in:
                apply(name, request)
        except grpc.RpcError:
            pass  # the client went away
        except RpcError as error:
            log.info("streaming pull on %s: %s", name, error)
            context.cancel()

    def stream(requests_in: Iterator, context: grpc.ServicerContext):
        try:
            first = next(requests_in)
            name = first.subscription
            broker.subscription(name)
            apply(name, first)
            lease = first.stream_ack_deadline_seconds or None
            reader = threading.Thread(
                target=read_rest, args=(name, requests_in, context), daemon=True
            )
            reader.start()
            while context.is_active():
                received = broker.pull(name, 100, wait=0.5, lease=lease)
                if received:
                    yield types.StreamingPullResponse(received_messages=received)
        except StopIteration:
            return
        except RpcError as error:
            context.abort(error.code, str(error))
        except Exception as error:
            log.exception("streaming pull failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")

    return grpc.stream_stream_rpc_method_handler(
        stream,
        request_deserializer=types.StreamingPullRequest.deserialize,
        response_serializer=types.StreamingPullResponse.serialize,
    )


def subscriber_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def pull(request: types.PullRequest) -> types.PullResponse:
        wait = 0.0 if request.return_immediately else PULL_WAIT
        received = broker.pull(request.subscription, request.max_messages or 1, wait)
        return types.PullResponse(received_messages=received)

    empty = empty_pb2.Empty
    return _service(
        "google.pubsub.v1.Subscriber",
        {
            "CreateSubscription": (
                broker.create_subscription,
                types.Subscription,
                types.Subscription,
            ),
            "GetSubscription": (
                lambda r: broker.subscription(r.subscription),
                types.GetSubscriptionRequest,
                types.Subscription,
            ),
            "ListSubscriptions": (
                lambda r: types.ListSubscriptionsResponse(
                    subscriptions=broker.list_subscriptions(r.project)
                ),
                types.ListSubscriptionsRequest,
                types.ListSubscriptionsResponse,
            ),
            "DeleteSubscription": (
                lambda r: broker.delete_subscription(r.subscription),
                types.DeleteSubscriptionRequest,
                empty,
            ),
            "UpdateSubscription": (
                lambda r: broker.update_subscription(r.subscription, list(r.update_mask.paths)),
                types.UpdateSubscriptionRequest,
                types.Subscription,
            ),
            "ModifyPushConfig": (
                lambda r: broker.modify_push_config(r.subscription, r.push_config),
                types.ModifyPushConfigRequest,
                empty,
            ),
            "Pull": (pull, types.PullRequest, types.PullResponse),
            "Acknowledge": (
                lambda r: broker.acknowledge(r.subscription, list(r.ack_ids)),
                types.AcknowledgeRequest,
                empty,
            ),
            "ModifyAckDeadline": (
                lambda r: broker.modify_ack_deadline(
                    r.subscription, list(r.ack_ids), r.ack_deadline_seconds
                ),
                types.ModifyAckDeadlineRequest,
                empty,
            ),
        },
        StreamingPull=_streaming_pull(broker),
    )


class PubSubEmulator:
    """The emulator in-process: `port = PubSubEmulator().start()`; `stop()` when done."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.broker = Broker()
        self.pusher = Pusher(self.broker)
        # Each StreamingPull stream holds a worker for its lifetime.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
        self.server.add_generic_rpc_handlers(
            (publisher_handlers(self.broker), subscriber_handlers(self.broker))
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> int:
        self.port = self.server.add_insecure_port(f"{self.host}:{self.port}")
        if not self.port:
            raise OSError(f"cannot bind {self.host}")
        self.server.start()
        self.pusher.thread.start()
        return self.port

    def stop(self) -> None:
        self.server.stop(grace=0.5).wait()
        self.pusher.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.pubsub_emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085, help="0 picks a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    emulator = PubSubEmulator(args.host, args.port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    emulator.start()
    print(f"listening on {emulator.address}", flush=True)
    while not stopped.wait(0.5):
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
