"""An enabled API (serviceusage)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.resources.base import Context, Resource, operation_getter

_ENABLING = threading.Lock()


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
        if live and live.get("state") == "ENABLED":
            # From now on a 403 SERVICE_DISABLED from this API means "still propagating".
            ctx.api.enabled.add(self.name)
            return live
        return None

    def create(self, ctx: Context) -> None:
        services = ctx.api.client("serviceusage", "v1").services()
        # One enable at a time: concurrent ones answer "Another activation or deactivation
        # is in progress" (Terraform batches them: serviceusage_batching.go).
        with _ENABLING:
            op = ctx.api.call(
                self.key, "enable", lambda: services.enable(name=self._path(ctx), body={})
            )
            ctx.api.wait(self.key, "enable", op, operation_getter(ctx, "serviceusage", "v1"))
        ctx.api.enabled.add(self.name)

    def delete(self, ctx: Context) -> None:  # pragma: no cover — never planned (deletable=False)
        return None
