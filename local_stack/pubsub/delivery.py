"""Publish, pull, acknowledge: leases, redelivery after a failed delivery, ordering keys,
exactly-once acknowledgement, retention and dead-lettering."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from google.pubsub_v1 import types

from local_stack.pubsub.errors import AckIdFailure, RpcError, invalid
from local_stack.pubsub.rules import validate_publish
from local_stack.pubsub.schemas import Schemas
from local_stack.pubsub.state import Pending, Subscription, timestamp

log = logging.getLogger("local_stack.pubsub")

MAX_PULL_BYTES = 10 * 1024 * 1024  # one response carries at most this (at least one message)


class Delivery(Schemas):
    def publish(self, topic: str, messages: list[types.PubsubMessage], size: int = 0) -> list[str]:
        validate_publish(messages, size)
        now = datetime.now(UTC)
        with self.lock:
            self._conform(self._topic(topic), messages)
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
            if subscription.proto.topic == topic and not subscription.proto.detached:
                if subscription.wants(stored):
                    subscription.queue[message_id] = Pending(stored, now.timestamp())
                elif self._retains(subscription):  # filtered out: acknowledged at once
                    subscription.retained[message_id] = stored
        for snapshot in self.snapshots.values():
            if snapshot.proto.topic == topic:
                snapshot.messages[message_id] = stored
        return message_id

    def _retains(self, subscription: Subscription) -> bool:
        """Acknowledged messages are kept for Seek with retain_acked_messages, or when the
        topic retains messages itself (Topic.message_retention_duration)."""
        topic = self.topics.get(subscription.proto.topic)
        return subscription.proto.retain_acked_messages or (
            topic is not None and "message_retention_duration" in topic
        )

    def _settle(self, subscription: Subscription, pending: Pending) -> None:
        """An acknowledged message leaves the backlog (lock held)."""
        del subscription.queue[pending.message.message_id]
        if self._retains(subscription):
            subscription.retained[pending.message.message_id] = pending.message

    def _expire(self, subscription: Subscription, now: float) -> None:
        """Expired leases count as failed deliveries; messages older than the retention
        duration leave the backlog (lock held)."""
        retention = subscription.proto.message_retention_duration
        cutoff = time.time() - retention.total_seconds()
        for pending in list(subscription.queue.values()):
            if pending.published < cutoff:
                del subscription.queue[pending.message.message_id]
            elif pending.leased_until and pending.leased_until <= now:
                self._nack(subscription, pending, now)
        for message_id, message in list(subscription.retained.items()):
            if message.publish_time.timestamp() >= cutoff:
                break
            del subscription.retained[message_id]

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
        size = 0
        for pending in subscription.queue.values():
            if len(due) >= limit or (due and size >= MAX_PULL_BYTES):
                break
            key = pending.message.ordering_key if ordered else ""
            if key and key in held:
                continue
            if not pending.leased_until and pending.available_at <= now:
                due.append(pending)
                size += len(pending.message.data)
                if lease == math.inf and key:
                    held.add(key)
            elif key:
                held.add(key)
        for pending in due:
            pending.attempts += 1
            pending.leased_until = now + lease
            pending.received = False
            nonce = uuid.uuid4().hex[:8]
            pending.ack_id = f"{subscription.name}#{pending.message.message_id}#{nonce}"
        return due

    def _nack(self, subscription: Subscription, pending: Pending, now: float) -> None:
        """A failed delivery: back off, or dead-letter when the attempts are used up.

        With message ordering, the messages of the same key leased after it come back too,
        so the key is redelivered in order (https://cloud.google.com/pubsub/docs/ordering)."""
        pending.leased_until = 0.0
        pending.ack_id = ""
        exhausted = subscription.max_attempts and pending.attempts >= subscription.max_attempts
        if exhausted and self._dead_letter(subscription, pending):
            return
        pending.available_at = now + subscription.backoff(pending.attempts)
        key = pending.message.ordering_key
        if subscription.proto.enable_message_ordering and key:
            later = False
            for other in subscription.queue.values():
                out = other.leased_until and other.leased_until != math.inf
                if later and out and other.message.ordering_key == key:
                    other.leased_until, other.ack_id = 0.0, ""
                later = later or other is pending

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
            "CloudPubSubDeadLetterSourceTopicPublishTime": timestamp(original.publish_time),
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
        self,
        name: str,
        limit: int,
        wait: float,
        lease: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[types.ReceivedMessage]:
        """Up to `limit` messages, waiting up to `wait` seconds for a first (or `stop`)."""
        deadline = time.monotonic() + wait
        with self.lock:
            while True:
                subscription = self._subscription(name)
                if subscription.proto.detached:
                    raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, f"{name} is detached")
                now = time.monotonic()
                self._expire(subscription, now)
                seconds = lease or subscription.proto.ack_deadline_seconds
                due = self._lease(subscription, limit, seconds, now) if limit > 0 else []
                if due or now >= deadline or (stop is not None and stop()):
                    return [self._received(subscription, pending) for pending in due]
                self.changed.wait(min(0.1, deadline - now))

    def _leased(self, subscription: Subscription, ack_id: str, now: float) -> Pending | None:
        """The message an ack id stands for, if it is still out under that id (lock held).
        Under exactly-once delivery an expired lease no longer counts."""
        owner, _, rest = ack_id.partition("#")
        message_id, _, nonce = rest.partition("#")
        if owner != subscription.name or not nonce:
            raise invalid(f"Invalid ack id (ack_id={ack_id})")
        pending = subscription.queue.get(message_id)
        if pending is None or pending.ack_id != ack_id:
            return None
        if subscription.exactly_once and pending.leased_until <= now:
            return None
        return pending

    def _each_leased(self, subscription: Subscription, ack_ids: list[str], now: float):
        """(ack id, pending or None) pairs; a malformed id is INVALID_ARGUMENT, or under
        exactly-once delivery one more failed id (lock held)."""
        for ack_id in ack_ids:
            try:
                yield ack_id, self._leased(subscription, ack_id, now)
            except RpcError:
                if not subscription.exactly_once:
                    raise
                yield ack_id, None

    def acknowledge(self, name: str, ack_ids: list[str], strict: bool = True) -> None:
        """Acknowledges; under exactly-once delivery unknown or expired ids fail, by name."""
        failed = []
        with self.lock:
            subscription = self._subscription(name)
            for ack_id, pending in self._each_leased(subscription, ack_ids, time.monotonic()):
                if pending is not None:
                    self._settle(subscription, pending)
                elif subscription.exactly_once:
                    failed.append(ack_id)
            self.changed.notify_all()
        if failed and strict:
            raise AckIdFailure(failed)

    def modify_ack_deadline(
        self, name: str, ack_ids: list[str], seconds: int, strict: bool = True
    ) -> None:
        if not 0 <= seconds <= 600:
            raise invalid("ack_deadline_seconds must be between 0 and 600")
        failed = []
        with self.lock:
            subscription = self._subscription(name)
            now = time.monotonic()
            for ack_id, pending in self._each_leased(subscription, ack_ids, now):
                if pending is None:
                    if subscription.exactly_once:
                        failed.append(ack_id)
                elif pending.leased_until == math.inf:
                    continue
                elif seconds == 0:
                    self._nack(subscription, pending, now)
                else:
                    pending.leased_until = now + seconds
                    pending.received = True
            self.changed.notify_all()
        if failed and strict:
            raise AckIdFailure(failed)

    def outstanding(self, name: str, ack_ids: set[str]) -> set[str]:
        """Which of these ack ids are still out (unacknowledged, lease not expired)."""
        with self.lock:
            subscription = self.subscriptions.get(name)
            if subscription is None:
                return set()
            now = time.monotonic()
            return {
                ack_id
                for ack_id in ack_ids
                if (pending := subscription.queue.get(ack_id.split("#")[1]))
                and pending.ack_id == ack_id
                and pending.leased_until > now
            }

    def release(self, name: str, ack_ids: set[str]) -> int:
        """A stream ended: its messages the client never confirmed (no modack or ack came,
        so they were lost in transit) are due again at once, their attempt not counted."""
        released = 0
        with self.lock:
            subscription = self.subscriptions.get(name)
            for ack_id in ack_ids if subscription else ():
                pending = subscription.queue.get(ack_id.split("#")[1])
                if pending and pending.ack_id == ack_id and not pending.received:
                    pending.leased_until, pending.ack_id = 0.0, ""
                    pending.attempts = max(pending.attempts - 1, 0)
                    pending.available_at = 0.0
                    released += 1
            self.changed.notify_all()
        return released
