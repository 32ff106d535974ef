"""An IAM service account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.resources.base import Context, Resource


@dataclass
class ServiceAccount(Resource):
    display_name: str = ""
    description: str = ""
    kind: ClassVar[str] = "service_account"

    def email(self, ctx: Context) -> str:
        return f"{self.name}@{ctx.project}.iam.gserviceaccount.com"

    def _accounts(self, ctx: Context):
        return ctx.api.client("iam", "v1").projects().serviceAccounts()

    def _path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/serviceAccounts/{self.email(ctx)}"

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"displayName": self.display_name, "description": self.description}

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(self.key, lambda: self._accounts(ctx).get(name=self._path(ctx)))

    def create(self, ctx: Context) -> None:
        body = {"accountId": self.name, "serviceAccount": self.body(ctx)}
        ctx.api.call(
            self.key,
            "create",
            lambda: self._accounts(ctx).create(name=f"projects/{ctx.project}", body=body),
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        body = {"serviceAccount": self.body(ctx), "updateMask": ",".join(mask)}
        ctx.api.call(
            self.key, "update", lambda: self._accounts(ctx).patch(name=self._path(ctx), body=body)
        )

    def delete(self, ctx: Context) -> None:
        ctx.api.call(self.key, "delete", lambda: self._accounts(ctx).delete(name=self._path(ctx)))

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {"email": live.get("email")}
