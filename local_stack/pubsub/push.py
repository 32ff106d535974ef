"""Push delivery: Pub/Sub's push JSON to each push subscription's endpoint."""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from concurrent import futures
from typing import Any

import requests

from local_stack.pubsub.delivery import Delivery
from local_stack.pubsub.state import Pending, Subscription, timestamp

log = logging.getLogger("local_stack.pubsub")

PUSH_CONCURRENCY = 8  # deliveries in flight per push subscription


class Pushes(Delivery):
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
    published = timestamp(message.publish_time)
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

    def __init__(self, broker: Pushes, workers: int = 4 * PUSH_CONCURRENCY) -> None:
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
