"""An enabled API (serviceusage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.resources.base import Context, Resource, operation_getter


@dataclass
class ServiceApi(Resource):
    """An enabled API. Destroy leaves APIs on: other things in the project may use them."""

    kind: ClassVar[str] = "service"
    deletable: ClassVar[bool] = False

    def _path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/services/{self.name}"

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"state": "ENABLED"}

    def read(self, ctx: Context) -> dict[str, Any] | None:
        services = ctx.api.client("serviceusage", "v1").services()
        live = ctx.api.get_or_none(self.key, lambda: services.get(name=self._path(ctx)))
        return live if live and live.get("state") == "ENABLED" else None

    def create(self, ctx: Context) -> None:
        services = ctx.api.client("serviceusage", "v1").services()
        op = ctx.api.call(
            self.key, "enable", lambda: services.enable(name=self._path(ctx), body={})
        )
        ctx.api.wait(self.key, "enable", op, operation_getter(ctx, "serviceusage", "v1"))

    def delete(self, ctx: Context) -> None:  # pragma: no cover — never planned (deletable=False)
        return None
