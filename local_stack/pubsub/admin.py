"""Topics and subscriptions: create, get, list (paged), update, delete."""

from __future__ import annotations

from google.pubsub_v1 import types

from local_stack.pubsub.errors import already_exists
from local_stack.pubsub.paging import page
from local_stack.pubsub.rules import (
    IMMUTABLE_SUBSCRIPTION,
    IMMUTABLE_TOPIC,
    masked_update,
    validate_push_endpoint,
    validate_subscription,
    validate_topic,
)
from local_stack.pubsub.schemas import Schemas
from local_stack.pubsub.state import DELETED_TOPIC, Subscription


class Admin(Schemas):
    def create_topic(self, topic: types.Topic) -> types.Topic:
        validate_topic(topic)
        with self.lock:
            self._check_schema_settings(topic)
            if topic.name in self.topics:
                raise already_exists("Topic already exists")
            self.topics[topic.name] = topic
        return topic

    def topic(self, name: str) -> types.Topic:
        with self.lock:
            return self._topic(name)

    def update_topic(self, patch: types.Topic, paths: list[str]) -> types.Topic:
        with self.lock:
            updated = masked_update(self._topic(patch.name), patch, paths, IMMUTABLE_TOPIC)
            if "schema_settings" in updated and not updated.schema_settings.schema:
                updated.schema_settings = None  # masked but left empty: the topic drops it
            validate_topic(updated)
            self._check_schema_settings(updated)
            self.topics[patch.name] = updated
            return updated

    def list_topics(
        self, project: str, size: int = 0, token: str = ""
    ) -> tuple[list[types.Topic], str]:
        with self.lock:
            names = sorted(n for n in self.topics if n.startswith(f"{project}/"))
            return page(names, [self.topics[n] for n in names], size, token)

    def topic_subscriptions(self, name: str, size: int = 0, token: str = "") -> tuple[list, str]:
        with self.lock:
            self._topic(name)
            names = sorted(n for n, s in self.subscriptions.items() if s.proto.topic == name)
            return page(names, names, size, token)

    def topic_snapshots(self, name: str, size: int = 0, token: str = "") -> tuple[list, str]:
        with self.lock:
            self._topic(name)
            names = sorted(n for n, s in self.snapshots.items() if s.proto.topic == name)
            return page(names, names, size, token)

    def delete_topic(self, name: str) -> None:
        with self.lock:
            self._topic(name)
            del self.topics[name]
            for subscription in self.subscriptions.values():
                if subscription.proto.topic == name:
                    subscription.proto.topic = DELETED_TOPIC

    def create_subscription(self, proto: types.Subscription) -> types.Subscription:
        validate_subscription(proto)
        with self.lock:
            self._topic(proto.topic)
            if proto.dead_letter_policy.dead_letter_topic:
                self._topic(proto.dead_letter_policy.dead_letter_topic)
            if proto.name in self.subscriptions:
                raise already_exists("Subscription already exists")
            self.subscriptions[proto.name] = Subscription(proto)
            self.changed.notify_all()
        return proto

    def subscription(self, name: str) -> types.Subscription:
        with self.lock:
            return self._subscription(name).proto

    def list_subscriptions(
        self, project: str, size: int = 0, token: str = ""
    ) -> tuple[list[types.Subscription], str]:
        with self.lock:
            names = sorted(n for n in self.subscriptions if n.startswith(f"{project}/"))
            return page(names, [self.subscriptions[n].proto for n in names], size, token)

    def delete_subscription(self, name: str) -> None:
        with self.lock:
            self._subscription(name)
            del self.subscriptions[name]

    def update_subscription(
        self, patch: types.Subscription, paths: list[str]
    ) -> types.Subscription:
        with self.lock:
            current = self._subscription(patch.name).proto
            updated = masked_update(current, patch, paths, IMMUTABLE_SUBSCRIPTION)
            validate_subscription(updated)
            if updated.dead_letter_policy.dead_letter_topic:
                self._topic(updated.dead_letter_policy.dead_letter_topic)
            self.subscriptions[patch.name].proto = updated
            self.changed.notify_all()
            return updated

    def detach_subscription(self, name: str) -> None:
        """Detached: its backlog is dropped and pulls fail with FAILED_PRECONDITION
        (DetachSubscriptionRequest in pubsub.proto)."""
        with self.lock:
            subscription = self._subscription(name)
            subscription.proto.detached = True
            subscription.queue.clear()
            self.changed.notify_all()

    def modify_push_config(self, name: str, push_config: types.PushConfig) -> None:
        validate_push_endpoint(push_config)
        with self.lock:
            self._subscription(name).proto.push_config = push_config
            self.changed.notify_all()
