"""What the emulator stores: topics, subscriptions, snapshots and pending messages, under
one lock."""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.pubsub_v1 import types

from local_stack.pubsub.errors import invalid, not_found
from local_stack.pubsub.filters import Predicate, compile_filter
from local_stack.pubsub.rules import SCHEMA_RE, SNAPSHOT_RE, SUBSCRIPTION_RE, TOPIC_RE, bounds

PUSH_MIN_BACKOFF = 0.1  # a push subscription without a retry policy: Google's push backoff
PUSH_MAX_BACKOFF = 60.0
DELETED_TOPIC = "_deleted-topic_"
DELETED_SCHEMA = "_deleted-schema_"  # a topic's schema once deleted (SchemaSettings.schema)


def timestamp(moment: datetime) -> str:
    """RFC 3339 with milliseconds and Z, as Google writes publish times."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Pending:
    """One message waiting in one subscription."""

    message: types.PubsubMessage
    published: float = 0.0  # the publish time, in seconds since the epoch
    ack_id: str = ""
    attempts: int = 0
    available_at: float = 0.0  # not before this (backoff after a failed delivery)
    leased_until: float = 0.0  # 0: not out for delivery; inf: a push in flight
    received: bool = False  # the client confirmed this lease (a modack or ack arrived)


@dataclass
class Subscription:
    proto: types.Subscription
    queue: dict[str, Pending] = field(default_factory=dict)  # message id → pending, in order
    retained: dict[str, types.PubsubMessage] = field(default_factory=dict)  # acked, for seek
    pushing: int = 0  # push deliveries in flight
    accepts: Predicate | None = field(init=False)

    def __post_init__(self) -> None:
        self.accepts = compile_filter(self.proto.filter)

    @property
    def name(self) -> str:
        return self.proto.name

    @property
    def push_endpoint(self) -> str:
        return self.proto.push_config.push_endpoint

    @property
    def exactly_once(self) -> bool:
        return self.proto.enable_exactly_once_delivery

    @property
    def max_attempts(self) -> int:
        """0 without a dead-letter policy: attempts are then not counted for the client."""
        policy = self.proto.dead_letter_policy
        return policy.max_delivery_attempts if policy.dead_letter_topic else 0

    def wants(self, message: types.PubsubMessage) -> bool:
        return self.accepts is None or self.accepts(message.attributes)

    def backoff(self, attempts: int) -> float:
        """Exponential between the retry policy's bounds; without one, pull retries at once."""
        if "retry_policy" in self.proto:
            low, high = bounds(self.proto.retry_policy)
        elif self.push_endpoint:
            low, high = PUSH_MIN_BACKOFF, PUSH_MAX_BACKOFF
        else:
            return 0.0
        return min(high, low * 2 ** max(attempts - 1, 0))


@dataclass
class Snapshot:
    """A subscription's backlog when it was taken, and everything published to its topic
    since (CreateSnapshotRequest.subscription in pubsub.proto)."""

    proto: types.Snapshot
    messages: dict[str, types.PubsubMessage] = field(default_factory=dict)


class State:
    """All state, under one lock; `changed` wakes pullers and the delivery loop. The
    lookups (`_topic`, `_subscription`, `_snapshot`, `_schema`) expect the lock held."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.topics: dict[str, types.Topic] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.schemas: dict[str, list[types.Schema]] = {}  # name → its revisions, oldest first
        self._ids = itertools.count(1)

    @staticmethod
    def _find(table: dict, kind: str, pattern: re.Pattern, name: str, missing: str):
        """table[name], or NOT_FOUND (`missing`), or INVALID_ARGUMENT for a malformed name."""
        if name not in table:
            if not pattern.match(name) and name != DELETED_TOPIC:
                raise invalid(f"Invalid [{kind}] name: ({name})")
            raise not_found(f"{missing}: {name}")
        return table[name]

    def _topic(self, name: str) -> types.Topic:
        return self._find(self.topics, "topics", TOPIC_RE, name, "Topic not found")

    def _subscription(self, name: str) -> Subscription:
        return self._find(
            self.subscriptions,
            "subscriptions",
            SUBSCRIPTION_RE,
            name,
            "Subscription does not exist",
        )

    def _schema(self, name: str) -> list[types.Schema]:
        return self._find(self.schemas, "schemas", SCHEMA_RE, name, "Schema not found")

    def _snapshot(self, name: str) -> Snapshot:
        return self._find(self.snapshots, "snapshots", SNAPSHOT_RE, name, "Snapshot does not exist")
