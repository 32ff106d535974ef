"""A Pub/Sub emulator that the real google-cloud-pubsub clients use via PUBSUB_EMULATOR_HOST.

gRPC, in one process: topics, subscriptions (ack deadline, retry policy, dead-letter policy,
push config), Publish, Pull, StreamingPull, Acknowledge, ModifyAckDeadline, redelivery after
the ack deadline, push delivery in Pub/Sub's push JSON format with exponential backoff
between the retry policy's bounds, and dead-lettering after `max_delivery_attempts`.

google-cloud-pubsub ships no servicer classes, so the services are generic gRPC handlers
over the proto-plus types. Errors carry the status codes Google's service uses
(NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT): the client retries UNKNOWN for a minute.

    python -m local_stack.pubsub_emulator --port 8085
"""

from __future__ import annotations

import argparse
import base64
import itertools
import logging
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
DEFAULT_MIN_BACKOFF = 10.0
DEFAULT_MAX_BACKOFF = 600.0
PUSH_CONCURRENCY = 8


class RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _seconds(duration: Any, default: float) -> float:
    if duration is None:
        return default
    value = duration.total_seconds() if hasattr(duration, "total_seconds") else float(duration)
    return value or default


@dataclass
class Pending:
    """One message waiting in one subscription."""

    message: types.PubsubMessage
    ack_id: str = ""
    attempts: int = 0
    available_at: float = 0.0  # not before (backoff)
    leased_until: float = 0.0  # 0 = not out for delivery


@dataclass
class Subscription:
    proto: types.Subscription
    queue: dict[str, Pending] = field(default_factory=dict)  # message id → pending

    @property
    def ack_deadline(self) -> float:
        return float(self.proto.ack_deadline_seconds or 10)

    @property
    def push_endpoint(self) -> str:
        return self.proto.push_config.push_endpoint

    @property
    def max_attempts(self) -> int:
        policy = self.proto.dead_letter_policy
        return (policy.max_delivery_attempts or 5) if policy.dead_letter_topic else 0

    def backoff(self, attempts: int) -> float:
        """Exponential between the retry policy's bounds; none: redeliver at once."""
        if "retry_policy" not in self.proto:
            return 0.0
        policy = self.proto.retry_policy
        low = _seconds(policy.minimum_backoff, DEFAULT_MIN_BACKOFF)
        high = _seconds(policy.maximum_backoff, DEFAULT_MAX_BACKOFF)
        return min(high, low * 2 ** max(attempts - 1, 0))


class Broker:
    """All state, under one lock; `changed` wakes pullers and the push loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.topics: dict[str, types.Topic] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.ack_index: dict[str, tuple[str, str]] = {}  # ack id → (subscription, message id)
        self._ids = itertools.count(1)

    # -- admin ----------------------------------------------------------------------------

    def create_topic(self, topic: types.Topic) -> types.Topic:
        if not TOPIC_RE.match(topic.name):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid [topics] name: ({topic.name})"
            )
        with self.lock:
            if topic.name in self.topics:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            self.topics[topic.name] = topic
        return topic

    def topic(self, name: str) -> types.Topic:
        with self.lock:
            if name not in self.topics:
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Topic not found")
            return self.topics[name]

    def delete_topic(self, name: str) -> None:
        with self.lock:
            if self.topics.pop(name, None) is None:
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Topic not found")
            for subscription in self.subscriptions.values():
                if subscription.proto.topic == name:
                    subscription.proto.topic = "_deleted-topic_"

    def create_subscription(self, proto: types.Subscription) -> types.Subscription:
        if not SUBSCRIPTION_RE.match(proto.name):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid [subscriptions] name: ({proto.name})"
            )
        deadline = proto.ack_deadline_seconds or 10
        if not 10 <= deadline <= 600:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "The value for ack_deadline_seconds must be between 10 and 600",
            )
        proto.ack_deadline_seconds = deadline
        policy = proto.dead_letter_policy
        if policy.dead_letter_topic:
            attempts = policy.max_delivery_attempts or 5
            if not 5 <= attempts <= 100:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "max_delivery_attempts must be between 5 and 100",
                )
            policy.max_delivery_attempts = attempts
        with self.lock:
            if proto.topic not in self.topics:
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Topic not found")
            if policy.dead_letter_topic and policy.dead_letter_topic not in self.topics:
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Dead letter topic not found")
            if proto.name in self.subscriptions:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
            self.subscriptions[proto.name] = Subscription(proto)
            self.changed.notify_all()
        return proto

    def subscription(self, name: str) -> Subscription:
        if name not in self.subscriptions:
            raise RpcError(grpc.StatusCode.NOT_FOUND, "Subscription does not exist")
        return self.subscriptions[name]

    def delete_subscription(self, name: str) -> None:
        with self.lock:
            subscription = self.subscription(name)
            for pending in subscription.queue.values():
                self.ack_index.pop(pending.ack_id, None)
            del self.subscriptions[name]

    def update_subscription(
        self, proto: types.Subscription, paths: list[str]
    ) -> types.Subscription:
        with self.lock:
            current = self.subscription(proto.name).proto
            for path in paths:
                setattr(current, path, getattr(proto, path))
            self.changed.notify_all()
            return current

    # -- data -----------------------------------------------------------------------------

    def publish(self, topic: str, messages: list[types.PubsubMessage]) -> list[str]:
        if not messages:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "The request contains no messages")
        now = datetime.now(UTC)
        ids = []
        with self.lock:
            if topic not in self.topics:
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Topic not found")
            targets = [s for s in self.subscriptions.values() if s.proto.topic == topic]
            for message in messages:
                if not message.data and not message.attributes:
                    raise RpcError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "Some messages are empty: a message needs data or attributes",
                    )
                message_id = str(next(self._ids))
                stored = types.PubsubMessage(
                    data=message.data,
                    attributes=dict(message.attributes),
                    ordering_key=message.ordering_key,
                    message_id=message_id,
                    publish_time=now,
                )
                for subscription in targets:
                    subscription.queue[message_id] = Pending(stored)
                ids.append(message_id)
            self.changed.notify_all()
        return ids

    def _expire_and_collect(
        self, subscription: Subscription, limit: int, now: float
    ) -> list[Pending]:
        """Leases out up to `limit` due messages (lock held); expired leases count as nacks."""
        due: list[Pending] = []
        for pending in list(subscription.queue.values()):
            if pending.leased_until and pending.leased_until <= now:
                self._nack(subscription, pending, now)
            if pending.message.message_id not in subscription.queue:
                continue  # dead-lettered just now
            if not pending.leased_until and pending.available_at <= now and len(due) < limit:
                due.append(pending)
        for pending in due:
            pending.attempts += 1
            pending.leased_until = now + subscription.ack_deadline
            self.ack_index.pop(pending.ack_id, None)
            pending.ack_id = (
                f"{subscription.proto.name}#{pending.message.message_id}#{uuid.uuid4().hex[:8]}"
            )
            self.ack_index[pending.ack_id] = (subscription.proto.name, pending.message.message_id)
        return due

    def _nack(self, subscription: Subscription, pending: Pending, now: float) -> None:
        """A failed delivery: back off, or dead-letter when the attempts are used up."""
        pending.leased_until = 0.0
        self.ack_index.pop(pending.ack_id, None)
        if subscription.max_attempts and pending.attempts >= subscription.max_attempts:
            self._dead_letter(subscription, pending)
            return
        pending.available_at = now + subscription.backoff(pending.attempts)

    def _dead_letter(self, subscription: Subscription, pending: Pending) -> None:
        del subscription.queue[pending.message.message_id]
        target = subscription.proto.dead_letter_policy.dead_letter_topic
        original = pending.message
        attributes = dict(original.attributes) | {
            "CloudPubSubDeadLetterSourceDeliveryCount": str(pending.attempts),
            "CloudPubSubDeadLetterSourceSubscription": subscription.proto.name.split("/")[-1],
            "CloudPubSubDeadLetterSourceSubscriptionProject": subscription.proto.name.split("/")[1],
            "CloudPubSubDeadLetterSourceTopicPublishTime": original.publish_time.isoformat(),
        }
        if target not in self.topics:
            return
        message_id = str(next(self._ids))
        forwarded = types.PubsubMessage(
            data=original.data,
            attributes=attributes,
            message_id=message_id,
            publish_time=datetime.now(UTC),
        )
        for other in self.subscriptions.values():
            if other.proto.topic == target:
                other.queue[message_id] = Pending(forwarded)
        log.info("dead-lettered message %s to %s", original.message_id, target)

    def received(self, subscription: Subscription, pending: Pending) -> types.ReceivedMessage:
        received = types.ReceivedMessage(ack_id=pending.ack_id, message=pending.message)
        if subscription.max_attempts:
            received.delivery_attempt = pending.attempts
        return received

    def pull(self, name: str, limit: int, wait: float) -> list[types.ReceivedMessage]:
        deadline = time.monotonic() + wait
        with self.lock:
            while True:
                subscription = self.subscription(name)
                now = time.monotonic()
                due = self._expire_and_collect(subscription, limit, now)
                if due or now >= deadline:
                    return [self.received(subscription, pending) for pending in due]
                self.changed.wait(min(0.1, deadline - now))

    def acknowledge(self, name: str, ack_ids: list[str]) -> None:
        with self.lock:
            subscription = self.subscription(name)
            for ack_id in ack_ids:
                owner = self.ack_index.pop(ack_id, None)
                if owner and owner[0] == name:
                    subscription.queue.pop(owner[1], None)

    def modify_ack_deadline(self, name: str, ack_ids: list[str], seconds: int) -> None:
        if not 0 <= seconds <= 600:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "ack_deadline_seconds must be between 0 and 600"
            )
        with self.lock:
            subscription = self.subscription(name)
            now = time.monotonic()
            for ack_id in ack_ids:
                owner = self.ack_index.get(ack_id)
                pending = subscription.queue.get(owner[1]) if owner else None
                if pending is None:
                    continue
                if seconds == 0:
                    self._nack(subscription, pending, now)
                else:
                    pending.leased_until = now + seconds
            self.changed.notify_all()

    # -- push -----------------------------------------------------------------------------

    def due_pushes(self, wait: float) -> list[tuple[Subscription, Pending]]:
        with self.lock:
            now = time.monotonic()
            work = [
                (subscription, pending)
                for subscription in self.subscriptions.values()
                if subscription.push_endpoint
                for pending in self._expire_and_collect(subscription, PUSH_CONCURRENCY * 4, now)
            ]
            if not work:
                self.changed.wait(wait)
            return work

    def settle_push(self, subscription: Subscription, pending: Pending, ok: bool) -> None:
        with self.lock:
            if pending.message.message_id not in subscription.queue:
                return
            if ok:
                self.ack_index.pop(pending.ack_id, None)
                del subscription.queue[pending.message.message_id]
            else:
                self._nack(subscription, pending, time.monotonic())
            self.changed.notify_all()


def push_body(subscription: Subscription, pending: Pending) -> dict[str, Any]:
    """The JSON a push endpoint receives (both spellings of the ids, as Google sends)."""
    message = pending.message
    published = message.publish_time.isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": subscription.proto.name,
    }
    if subscription.max_attempts:
        body["deliveryAttempt"] = pending.attempts
    return body


class Pusher:
    """Delivers push subscriptions' messages: 2xx (or 102) acknowledges, anything else nacks."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.session = requests.Session()
        self.session.trust_env = False  # per-request proxy lookup costs more than the request
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=PUSH_CONCURRENCY * 2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.pool = futures.ThreadPoolExecutor(PUSH_CONCURRENCY, thread_name_prefix="push")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pusher", daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            for subscription, pending in self.broker.due_pushes(wait=0.05):
                self.pool.submit(self.deliver, subscription, pending)

    def deliver(self, subscription: Subscription, pending: Pending) -> None:
        try:
            response = self.session.post(
                subscription.push_endpoint,
                json=push_body(subscription, pending),
                timeout=subscription.ack_deadline,
            )
            ok = 200 <= response.status_code < 300 or response.status_code == 102
        except requests.RequestException:
            ok = False
        self.broker.settle_push(subscription, pending, ok)

    def stop(self) -> None:
        self.stopping.set()
        with self.broker.lock:
            self.broker.changed.notify_all()
        self.pool.shutdown(wait=False, cancel_futures=True)


# -- gRPC wiring ------------------------------------------------------------------------------


def _guard(function: Callable) -> Callable:
    """Turn our errors into their status codes, and anything unexpected into INTERNAL."""

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return function(request, context)
        except RpcError as error:
            context.abort(error.code, str(error))
        except (KeyError, ValueError, TypeError) as error:
            log.exception("bad request")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    return handler


def _unary(function: Callable, request_type: Any, response_type: Any):
    serialize = (
        response_type.SerializeToString
        if response_type is empty_pb2.Empty
        else response_type.serialize
    )
    return grpc.unary_unary_rpc_method_handler(
        _guard(function),
        request_deserializer=request_type.deserialize,
        response_serializer=serialize,
    )


def publisher_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def list_topics(request, _):
        with broker.lock:
            prefix = f"{request.project}/topics/"
            return types.ListTopicsResponse(
                topics=[t for name, t in sorted(broker.topics.items()) if name.startswith(prefix)]
            )

    def list_topic_subscriptions(request, _):
        broker.topic(request.topic)
        with broker.lock:
            names = sorted(
                n for n, s in broker.subscriptions.items() if s.proto.topic == request.topic
            )
        return types.ListTopicSubscriptionsResponse(subscriptions=names)

    def delete_topic(request, _):
        broker.delete_topic(request.topic)
        return empty_pb2.Empty()

    def publish(request, _):
        return types.PublishResponse(
            message_ids=broker.publish(request.topic, list(request.messages))
        )

    return grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Publisher",
        {
            "CreateTopic": _unary(lambda r, _: broker.create_topic(r), types.Topic, types.Topic),
            "GetTopic": _unary(
                lambda r, _: broker.topic(r.topic), types.GetTopicRequest, types.Topic
            ),
            "ListTopics": _unary(list_topics, types.ListTopicsRequest, types.ListTopicsResponse),
            "ListTopicSubscriptions": _unary(
                list_topic_subscriptions,
                types.ListTopicSubscriptionsRequest,
                types.ListTopicSubscriptionsResponse,
            ),
            "DeleteTopic": _unary(delete_topic, types.DeleteTopicRequest, empty_pb2.Empty),
            "Publish": _unary(publish, types.PublishRequest, types.PublishResponse),
        },
    )


def subscriber_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def get(request, _):
        with broker.lock:
            return broker.subscription(request.subscription).proto

    def list_subscriptions(request, _):
        with broker.lock:
            prefix = f"{request.project}/subscriptions/"
            protos = [
                s.proto for n, s in sorted(broker.subscriptions.items()) if n.startswith(prefix)
            ]
        return types.ListSubscriptionsResponse(subscriptions=protos)

    def delete(request, _):
        broker.delete_subscription(request.subscription)
        return empty_pb2.Empty()

    def update(request, _):
        return broker.update_subscription(request.subscription, list(request.update_mask.paths))

    def modify_push_config(request, _):
        with broker.lock:
            broker.subscription(request.subscription).proto.push_config = request.push_config
            broker.changed.notify_all()
        return empty_pb2.Empty()

    def pull(request, _):
        wait = 0.0 if request.return_immediately else 2.0
        received = broker.pull(request.subscription, request.max_messages or 1, wait)
        return types.PullResponse(received_messages=received)

    def acknowledge(request, _):
        broker.acknowledge(request.subscription, list(request.ack_ids))
        return empty_pb2.Empty()

    def modify_ack_deadline(request, _):
        broker.modify_ack_deadline(
            request.subscription, list(request.ack_ids), request.ack_deadline_seconds
        )
        return empty_pb2.Empty()

    def streaming_pull(requests_iter: Iterator, context: grpc.ServicerContext):
        try:
            first = next(requests_iter)
        except StopIteration:
            return
        name = first.subscription
        try:
            with broker.lock:
                broker.subscription(name)
        except RpcError as error:
            context.abort(error.code, str(error))

        def apply(request: types.StreamingPullRequest) -> None:
            if request.ack_ids:
                broker.acknowledge(name, list(request.ack_ids))
            for ack_id, seconds in zip(
                request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=False
            ):
                broker.modify_ack_deadline(name, [ack_id], seconds)

        def read_rest() -> None:
            try:
                for request in requests_iter:
                    apply(request)
            except (grpc.RpcError, RpcError, ValueError):
                pass

        apply(first)
        threading.Thread(target=read_rest, daemon=True).start()
        limit = first.max_outstanding_messages or 100
        while context.is_active():
            try:
                received = broker.pull(name, min(limit, 100), wait=0.5)
            except RpcError as error:
                context.abort(error.code, str(error))
            if received:
                yield types.StreamingPullResponse(received_messages=received)

    streaming = grpc.stream_stream_rpc_method_handler(
        streaming_pull,
        request_deserializer=types.StreamingPullRequest.deserialize,
        response_serializer=types.StreamingPullResponse.serialize,
    )
    return grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Subscriber",
        {
            "CreateSubscription": _unary(
                lambda r, _: broker.create_subscription(r), types.Subscription, types.Subscription
            ),
            "GetSubscription": _unary(get, types.GetSubscriptionRequest, types.Subscription),
            "ListSubscriptions": _unary(
                list_subscriptions, types.ListSubscriptionsRequest, types.ListSubscriptionsResponse
            ),
            "DeleteSubscription": _unary(delete, types.DeleteSubscriptionRequest, empty_pb2.Empty),
            "UpdateSubscription": _unary(
                update, types.UpdateSubscriptionRequest, types.Subscription
            ),
            "ModifyPushConfig": _unary(
                modify_push_config, types.ModifyPushConfigRequest, empty_pb2.Empty
            ),
            "Pull": _unary(pull, types.PullRequest, types.PullResponse),
            "Acknowledge": _unary(acknowledge, types.AcknowledgeRequest, empty_pb2.Empty),
            "ModifyAckDeadline": _unary(
                modify_ack_deadline, types.ModifyAckDeadlineRequest, empty_pb2.Empty
            ),
            "StreamingPull": streaming,
        },
    )


class PubSubEmulator:
    """The emulator in-process: `port = PubSubEmulator().start()`; `stop()` when done."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.broker = Broker()
        self.pusher = Pusher(self.broker)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers(
            (publisher_handlers(self.broker), subscriber_handlers(self.broker))
        )

    def start(self) -> int:
        self.port = self.server.add_insecure_port(f"{self.host}:{self.port}")
        self.server.start()
        self.pusher.thread.start()
        return self.port

    def stop(self) -> None:
        self.pusher.stop()
        self.server.stop(grace=0.5).wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.pubsub_emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    emulator = PubSubEmulator(args.host, args.port)
    port = emulator.start()
    print(f"listening on {args.host}:{port}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
