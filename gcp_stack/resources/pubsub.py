"""Pub/Sub topics and subscriptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from gcp_stack.resources.base import Context, Resource, labelled


@dataclass
class Topic(Resource):
    labels: dict[str, str] = field(default_factory=dict)
    retention: str = "604800s"
    label_field: ClassVar[str] = "labels"
    kind: ClassVar[str] = "topic"

    def path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/topics/{self.name}"

    def _topics(self, ctx: Context):
        return ctx.api.client("pubsub", "v1").projects().topics()

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"labels": self.labels, "messageRetentionDuration": self.retention}

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(self.key, lambda: self._topics(ctx).get(topic=self.path(ctx)))

    def create(self, ctx: Context) -> None:
        ctx.api.call(
            self.key,
            "create",
            lambda: self._topics(ctx).create(name=self.path(ctx), body=self.body(ctx)),
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        body = {"topic": self.owned_body(ctx), "updateMask": ",".join(mask)}
        ctx.api.call(
            self.key, "update", lambda: self._topics(ctx).patch(name=self.path(ctx), body=body)
        )

    def delete(self, ctx: Context) -> None:
        ctx.api.call(self.key, "delete", lambda: self._topics(ctx).delete(topic=self.path(ctx)))

    def holds_data(self, ctx: Context, live: dict[str, Any]) -> str:
        # A topic keeps what was published for its retention (for seek); its subscriptions
        # keep their own backlogs, which go only with them.
        retention = live.get("messageRetentionDuration")
        return f"keeps published messages for {retention}" if retention else ""

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        topics = ctx.api.client("pubsub", "v1").projects().topics()
        found = ctx.api.list_all(
            "topics",
            "topics",
            lambda token: topics.list(project=f"projects/{ctx.project}", pageToken=token),
        )
        return [cls(f"topic/{name}") for name in labelled(found, ctx)]


@dataclass
class Subscription(Resource):
    topic: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ack_deadline_seconds: int = 60
    retention: str = "604800s"
    label_field: ClassVar[str] = "labels"
    kind: ClassVar[str] = "subscription"
    immutable: ClassVar[frozenset[str]] = frozenset({"topic"})

    def path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/subscriptions/{self.name}"

    def _subscriptions(self, ctx: Context):
        return ctx.api.client("pubsub", "v1").projects().subscriptions()

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "topic": f"projects/{ctx.project}/topics/{self.topic}",
            "labels": self.labels,
            "ackDeadlineSeconds": self.ack_deadline_seconds,
            "messageRetentionDuration": self.retention,
        }

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(
            self.key, lambda: self._subscriptions(ctx).get(subscription=self.path(ctx))
        )

    def create(self, ctx: Context) -> None:
        ctx.api.call(
            self.key,
            "create",
            lambda: self._subscriptions(ctx).create(name=self.path(ctx), body=self.body(ctx)),
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        body = {"subscription": self.owned_body(ctx), "updateMask": ",".join(mask)}
        ctx.api.call(
            self.key,
            "update",
            lambda: self._subscriptions(ctx).patch(name=self.path(ctx), body=body),
        )

    def delete(self, ctx: Context) -> None:
        ctx.api.call(
            self.key,
            "delete",
            lambda: self._subscriptions(ctx).delete(subscription=self.path(ctx)),
        )

    def holds_data(self, ctx: Context, live: dict[str, Any]) -> str:
        # The Pub/Sub API reports no backlog (only Cloud Monitoring's
        # subscription/num_undelivered_messages does, minutes late): assume there is one.
        return "may hold undelivered messages, and Pub/Sub reports no backlog"

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        subscriptions = ctx.api.client("pubsub", "v1").projects().subscriptions()
        found = ctx.api.list_all(
            "subscriptions",
            "subscriptions",
            lambda token: subscriptions.list(project=f"projects/{ctx.project}", pageToken=token),
        )
        return [cls(f"subscription/{name}") for name in labelled(found, ctx)]
