"""A log-based metric (Cloud Logging)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.resources.base import Context, Resource


@dataclass
class LogMetric(Resource):
    filter: str = ""
    description: str = ""
    kind: ClassVar[str] = "log_metric"

    def _metrics(self, ctx: Context):
        return ctx.api.client("logging", "v2").projects().metrics()

    def _path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/metrics/{self.name}"

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"name": self.name, "filter": self.filter, "description": self.description}

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(
            self.key, lambda: self._metrics(ctx).get(metricName=self._path(ctx))
        )

    def create(self, ctx: Context) -> None:
        ctx.api.call(
            self.key,
            "create",
            lambda: self._metrics(ctx).create(
                parent=f"projects/{ctx.project}", body=self.body(ctx)
            ),
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        ctx.api.call(
            self.key,
            "update",
            lambda: self._metrics(ctx).update(metricName=self._path(ctx), body=self.body(ctx)),
        )

    def delete(self, ctx: Context) -> None:
        ctx.api.call(
            self.key, "delete", lambda: self._metrics(ctx).delete(metricName=self._path(ctx))
        )
