"""Cloud Monitoring objects: notification channels, alert policies, uptime checks,
dashboards."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gcp_stack.resources.base import STACK_LABEL, Context, Resource, resolve


@dataclass
class MonitoringObject(Resource):
    """A Monitoring object whose name the server assigns (alert policy, notification channel,
    uptime check, dashboard): found again by its display name, which the stack keeps unique."""

    spec: dict[str, Any] = field(default_factory=dict)
    collection: ClassVar[str] = ""
    version: ClassVar[str] = "v3"
    label_field: ClassVar[str] = "userLabels"
    kind: ClassVar[str] = "monitoring"

    @classmethod
    def _collection(cls, ctx: Context):
        projects = ctx.api.client("monitoring", cls.version).projects()
        return getattr(projects, cls.collection)()

    @classmethod
    def _parent(cls, ctx: Context) -> dict[str, str]:
        return {"parent" if cls.version == "v1" else "name": f"projects/{ctx.project}"}

    @classmethod
    def _list(cls, ctx: Context, resource: str) -> list[dict[str, Any]]:
        """Every object of this collection in the project, page by page."""
        return ctx.api.list_all(
            resource,
            cls.collection,
            lambda token: cls._collection(ctx).list(**cls._parent(ctx), pageToken=token),
        )

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"displayName": self.name} | resolve(self.spec, ctx.outputs)

    def read(self, ctx: Context) -> dict[str, Any] | None:
        items = self._list(ctx, self.key)
        return next((item for item in items if item.get("displayName") == self.name), None)

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        items = cls._list(ctx, f"{cls.kind}s")
        return [
            cls(f"{cls.kind}/{item['displayName']}")
            for item in items
            if ctx.stack and (item.get(cls.label_field) or {}).get(STACK_LABEL) == ctx.stack
        ]

    def create(self, ctx: Context) -> None:
        args = self._parent(ctx)
        ctx.api.call(
            self.key, "create", lambda: self._collection(ctx).create(**args, body=self.body(ctx))
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        live = self.read(ctx) or {}
        body = self.owned_body(ctx) | {"name": live.get("name")}
        if self.version == "v1":  # dashboards: whole-object update with the etag
            body["etag"] = live.get("etag", "")
            ctx.api.call(
                self.key,
                "update",
                lambda: self._collection(ctx).patch(name=live["name"], body=body),
            )
            return
        ctx.api.call(
            self.key,
            "update",
            lambda: self._collection(ctx).patch(
                name=live["name"], updateMask=",".join(mask), body=body
            ),
        )

    def delete(self, ctx: Context) -> None:
        live = self.read(ctx)
        if live:
            ctx.api.call(
                self.key, "delete", lambda: self._collection(ctx).delete(name=live["name"])
            )

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {"name": live.get("name")}

    def follows(self) -> dict[str, str]:
        # Resources whose outputs the spec names: when they change, so may this body.
        text = json.dumps(self.spec)
        return {dep: "" for dep in self.depends_on if f"{{output:{dep}:" in text}


@dataclass
class NotificationChannel(MonitoringObject):
    collection: ClassVar[str] = "notificationChannels"
    kind: ClassVar[str] = "notification_channel"


@dataclass
class AlertPolicy(MonitoringObject):
    collection: ClassVar[str] = "alertPolicies"
    kind: ClassVar[str] = "alert_policy"


@dataclass
class UptimeCheck(MonitoringObject):
    collection: ClassVar[str] = "uptimeCheckConfigs"
    kind: ClassVar[str] = "uptime_check"

    @classmethod
    def _parent(cls, ctx: Context) -> dict[str, str]:
        return {"parent": f"projects/{ctx.project}"}

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        # The server assigns the id (the name's last segment); check_passed carries it as
        # its check_id label, which is how an alert policy selects this check.
        # https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.uptimeCheckConfigs
        name = live.get("name") or ""
        return {"name": name, "check_id": name.rsplit("/", 1)[-1] if name else None}


@dataclass
class Dashboard(MonitoringObject):
    collection: ClassVar[str] = "dashboards"
    version: ClassVar[str] = "v1"
    label_field: ClassVar[str] = "labels"
    kind: ClassVar[str] = "dashboard"
