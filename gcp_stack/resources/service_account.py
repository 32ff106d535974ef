"""An IAM service account."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.errors import OperationFailed
from gcp_stack.resources.base import Context, Resource

CONSECUTIVE_READS = 3


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
        self._await_visible(ctx)

    def _await_visible(self, ctx: Context) -> None:
        """IAM is eventually consistent: a new account is not at once visible to reads,
        policies or deployments. Like Terraform (resource_google_service_account.go: "Wait
        for at least 3 successful responses in a row"), poll until three reads in a row
        find it, under the propagation deadline."""
        started, delay, found = time.monotonic(), 0.1, 0
        while found < CONSECUTIVE_READS:
            if self.read(ctx) is None:
                found = 0
                waited = time.monotonic() - started
                if waited > ctx.api.propagation_deadline:
                    raise OperationFailed(
                        self.key,
                        "create",
                        f"gave up after {waited:.0f}s waiting for the new account to be "
                        "visible: service account not yet visible "
                        "(resource_google_service_account.go polls for 3 consecutive reads)",
                    )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                found += 1

    def update(self, ctx: Context, mask: list[str]) -> None:
        body = {"serviceAccount": self.body(ctx), "updateMask": ",".join(mask)}
        ctx.api.call(
            self.key, "update", lambda: self._accounts(ctx).patch(name=self._path(ctx), body=body)
        )

    def delete(self, ctx: Context) -> None:
        ctx.api.call(self.key, "delete", lambda: self._accounts(ctx).delete(name=self._path(ctx)))

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {"email": live.get("email")}
