"""Workload Identity Federation: a pool and its AWS provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.errors import ApiCallFailed
from gcp_stack.resources.base import Context, Resource, operation_getter


@dataclass
class _SoftDeleted(Resource):
    """A pool or provider: deleting it only marks it DELETED for 30 days, during which its
    name stays taken. Creating it again undeletes it and sets the declared fields."""

    id_parameter: ClassVar[str] = ""

    def path(self, ctx: Context) -> str:
        raise NotImplementedError

    def _collection(self, ctx: Context) -> Any:
        raise NotImplementedError

    def _wait(self, ctx: Context, operation: str, op: dict) -> None:
        ctx.api.wait(self.key, operation, op, operation_getter(ctx, "iam", "v1"))

    def read(self, ctx: Context) -> dict[str, Any] | None:
        live = self._read_any(ctx)
        return live if live and live.get("state") != "DELETED" else None

    def _read_any(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(self.key, lambda: self._collection(ctx).get(name=self.path(ctx)))

    def create(self, ctx: Context) -> None:
        parent = self.path(ctx).rsplit("/", 2)[0]  # drop "<collection>/<id>"
        arguments = {"parent": parent, self.id_parameter: self.name, "body": self.body(ctx)}
        try:
            op = ctx.api.call(self.key, "create", lambda: self._collection(ctx).create(**arguments))
        except ApiCallFailed as error:
            if error.status != 409 or (self._read_any(ctx) or {}).get("state") != "DELETED":
                raise
            op = ctx.api.call(
                self.key,
                "undelete",
                lambda: self._collection(ctx).undelete(name=self.path(ctx), body={}),
            )
            self._wait(ctx, "undelete", op)
            self.update(ctx, sorted(self.body(ctx)))
            return
        self._wait(ctx, "create", op)

    def update(self, ctx: Context, mask: list[str]) -> None:
        op = ctx.api.call(
            self.key,
            "update",
            lambda: self._collection(ctx).patch(
                name=self.path(ctx), updateMask=",".join(mask), body=self.body(ctx)
            ),
        )
        self._wait(ctx, "update", op)

    def delete(self, ctx: Context) -> None:
        op = ctx.api.call(
            self.key, "delete", lambda: self._collection(ctx).delete(name=self.path(ctx))
        )
        self._wait(ctx, "delete", op)


@dataclass
class WorkloadIdentityPool(_SoftDeleted):
    description: str = ""
    kind: ClassVar[str] = "workload_identity_pool"
    id_parameter: ClassVar[str] = "workloadIdentityPoolId"

    def path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/locations/global/workloadIdentityPools/{self.name}"

    def _collection(self, ctx: Context) -> Any:
        return ctx.api.client("iam", "v1").projects().locations().workloadIdentityPools()

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"displayName": self.name[:32], "description": self.description, "disabled": False}


@dataclass
class AwsProvider(_SoftDeleted):
    """An AWS provider that admits only the relay's role of the configured AWS account.

    `google.subject` is the assumed-role ARN (`arn:aws:sts::<account>:assumed-role/<role>/
    <session>`); `attribute.aws_role` is the role name extracted from it, which the relay's
    principal set (`…/attribute.aws_role/<role>`) names.
    """

    pool: str = ""
    account: str = ""
    role_name: str = ""
    kind: ClassVar[str] = "workload_identity_provider"
    immutable: ClassVar[frozenset[str]] = frozenset({"aws"})
    id_parameter: ClassVar[str] = "workloadIdentityPoolProviderId"

    def path(self, ctx: Context) -> str:
        return (
            f"projects/{ctx.project}/locations/global/workloadIdentityPools/{self.pool}"
            f"/providers/{self.name}"
        )

    def _collection(self, ctx: Context) -> Any:
        pools = ctx.api.client("iam", "v1").projects().locations().workloadIdentityPools()
        return pools.providers()

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "displayName": self.name[:32],
            "disabled": False,
            "aws": {"accountId": self.account},
            "attributeMapping": {
                "google.subject": "assertion.arn",
                "attribute.aws_role": "assertion.arn.extract('assumed-role/{role}/')",
                "attribute.aws_account": "assertion.account",
            },
            "attributeCondition": (
                f"attribute.aws_account == '{self.account}' && "
                f"attribute.aws_role == '{self.role_name}'"
            ),
        }
