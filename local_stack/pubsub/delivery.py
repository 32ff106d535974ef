"""Publish, pull, acknowledge: leases, redelivery after a failed delivery, dead-lettering."""

from __future__ import annotations

import logging
import math
import time
import uuid
from datetime import UTC, datetime

from google.pubsub_v1 import types

from local_stack.pubsub.errors import invalid
from local_stack.pubsub.state import Pending, State, Subscription, timestamp

log = logging.getLogger("local_stack.pubsub")


class Delivery(State):
    def publish(self, topic: str, messages: list[types.PubsubMessage]) -> list[str]:
        if not messages:
            raise invalid("The request contains no messages")
        if any(not m.data and not m.attributes for m in messages):
            raise invalid("Some messages are empty: a message needs data or attributes")
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
            raise invalid(f"Invalid ack id (ack_id={ack_id})")
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
            raise invalid("ack_deadline_seconds must be between 0 and 600")
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
