"""Topics and subscriptions: create, get, list, update, delete."""

from __future__ import annotations

from google.pubsub_v1 import types

from local_stack.pubsub.errors import already_exists, invalid
from local_stack.pubsub.rules import (
    IMMUTABLE,
    SUBSCRIPTION_RE,
    TOPIC_RE,
    validate_subscription,
)
from local_stack.pubsub.state import DELETED_TOPIC, State, Subscription


class Admin(State):
    def create_topic(self, topic: types.Topic) -> types.Topic:
        if not TOPIC_RE.match(topic.name):
            raise invalid(f"Invalid [topics] name: ({topic.name})")
        with self.lock:
            if topic.name in self.topics:
                raise already_exists("Topic already exists")
            self.topics[topic.name] = topic
        return topic

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
            raise invalid(f"Invalid [subscriptions] name: ({proto.name})")
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
            raise invalid(f"update_mask names no field that can be updated: {unknown}")
        with self.lock:
            current = self._subscription(proto.name).proto
            updated = types.Subscription.deserialize(types.Subscription.serialize(current))
            for path in paths:
                setattr(updated, path, getattr(proto, path))
            validate_subscription(updated)
            if updated.dead_letter_policy.dead_letter_topic:
                self._topic(updated.dead_letter_policy.dead_letter_topic)
            self.subscriptions[proto.name].proto = updated
            self.changed.notify_all()
            return updated

    def modify_push_config(self, name: str, push_config: types.PushConfig) -> None:
        with self.lock:
            self._subscription(name).proto.push_config = push_config
            self.changed.notify_all()
