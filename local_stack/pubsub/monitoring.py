"""What Cloud Monitoring samples from Pub/Sub, sampled from the emulator's own state.

Google reports each subscription's backlog as two GAUGE metrics, sampled every 60 s
(https://cloud.google.com/monitoring/api/metrics_gcp#gcp-pubsub):
`subscription/num_undelivered_messages` (unacknowledged messages) and
`subscription/oldest_unacked_message_age` (seconds since the oldest of them was published),
on the `pubsub_subscription` resource (labels project_id, subscription_id), and each
topic's publishes as `topic/send_message_operation_count` (DELTA INT64, label
response_code) on `pubsub_topic`. The emulator writes the same samples as JSON lines
(local_stack.signals reads them back), at the interval it is given.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from local_stack.pubsub.broker import Broker
from local_stack.pubsub.state import State

METRIC = "pubsub.googleapis.com/subscription/"
TOPIC_METRIC = "pubsub.googleapis.com/topic/send_message_operation_count"


class PublishCounter:
    """Counts the messages each publish call stores, per topic, between two samples."""

    def __init__(self, broker: Broker) -> None:
        self.counts: dict[str, int] = {}
        self._publish = broker.publish
        broker.publish = self.publish  # type: ignore[method-assign]

    def publish(self, topic: str, messages: list, *args: Any, **kwargs: Any) -> list[str]:
        ids = self._publish(topic, messages, *args, **kwargs)
        self.counts[topic] = self.counts.get(topic, 0) + len(ids)
        return ids

    def take(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts


def samples(state: State, now: datetime) -> list[dict[str, Any]]:
    lines = []
    with state.lock:
        for name, subscription in sorted(state.subscriptions.items()):
            _, project, _, subscription_id = name.split("/", 3)
            published = [p.message.publish_time for p in subscription.queue.values()]
            oldest = (now - min(published)).total_seconds() if published else 0.0
            labels = {
                "resource.type": "pubsub_subscription",
                "resource.labels.project_id": project,
                "resource.labels.subscription_id": subscription_id,
            }
            for metric, value, unit in (
                ("num_undelivered_messages", len(published), "1"),
                ("oldest_unacked_message_age", int(max(oldest, 0.0)), "s"),
            ):
                lines.append({"event": "monitoring.sample", "time": now.isoformat(),
                              "metric": METRIC + metric, "labels": labels, "value": value,
                              "unit": unit})  # fmt: skip
    return lines


def topic_samples(counts: dict[str, int], now: datetime) -> list[dict[str, Any]]:
    lines = []
    for topic, count in sorted(counts.items()):
        _, project, _, topic_id = topic.split("/", 3)
        labels = {
            "resource.type": "pubsub_topic",
            "resource.labels.project_id": project,
            "resource.labels.topic_id": topic_id,
            "metric.labels.response_code": "success",
        }
        lines.append(
            {
                "event": "monitoring.sample",
                "time": now.isoformat(),
                "metric": TOPIC_METRIC,
                "labels": labels,
                "value": count,
                "unit": "1",
            }
        )
    return lines  # fmt: skip


def write_samples(state: State, counter: PublishCounter, out: TextIO = sys.stdout) -> None:
    now = datetime.now(UTC)
    for line in samples(state, now) + topic_samples(counter.take(), now):
        out.write(json.dumps(line) + "\n")
    out.flush()
