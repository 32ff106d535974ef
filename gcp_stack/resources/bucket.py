"""A Cloud Storage bucket."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gcp_stack.errors import ApiCallFailed
from gcp_stack.resources.base import Context, Resource, labelled

NEARLINE_MINIMUM_DAYS = 30
MAX_COUNTED = 1000  # object versions counted for the plan (one page of objects.list)


@dataclass
class Bucket(Resource):
    location: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    retention_days: int = 365
    label_field: ClassVar[str] = "labels"
    kind: ClassVar[str] = "bucket"
    immutable: ClassVar[frozenset[str]] = frozenset({"location"})

    def _buckets(self, ctx: Context):
        return ctx.api.client("storage", "v1").buckets()

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "location": self.location.upper(),
            "storageClass": "STANDARD",
            "labels": self.labels,
            "versioning": {"enabled": True},
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": True},
                "publicAccessPrevention": "enforced",
            },
            "lifecycle": {"rule": self._lifecycle()},
        }

    def _lifecycle(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = [
            {"action": {"type": "Delete"}, "condition": {"age": self.retention_days}},
            {"action": {"type": "Delete"},
             "condition": {"isLive": False, "daysSinceNoncurrentTime": 30}},
        ]  # fmt: skip
        if self.retention_days >= 30 + NEARLINE_MINIMUM_DAYS:
            # Only worth it when objects stay in Nearline for its minimum storage duration.
            rules.insert(0, {"action": {"type": "SetStorageClass", "storageClass": "NEARLINE"},
                             "condition": {"age": 30}})  # fmt: skip
        return rules

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(self.key, lambda: self._buckets(ctx).get(bucket=self.name))

    def create(self, ctx: Context) -> None:
        body = {"name": self.name} | self.body(ctx)
        ctx.api.call(
            self.key, "create", lambda: self._buckets(ctx).insert(project=ctx.project, body=body)
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        body = {key: value for key, value in self.owned_body(ctx).items() if key in mask}
        ctx.api.call(
            self.key, "update", lambda: self._buckets(ctx).patch(bucket=self.name, body=body)
        )

    def delete(self, ctx: Context) -> None:
        try:
            ctx.api.call(self.key, "delete", lambda: self._buckets(ctx).delete(bucket=self.name))
        except ApiCallFailed as error:
            if error.status != 409:
                raise
            raise ApiCallFailed(
                self.key,
                "delete",
                409,
                "the bucket holds objects written since the plan: plan again, and pass "
                "--allow-destroy-data to delete them",
            ) from None

    def holds_data(self, ctx: Context, live: dict[str, Any]) -> str:
        # One page is enough to say whether it is empty; a count past it is "or more".
        objects = ctx.api.client("storage", "v1").objects()
        listing = functools.partial(
            objects.list, bucket=self.name, versions=True, maxResults=MAX_COUNTED,
            fields="items(name),nextPageToken",
        )  # fmt: skip
        try:
            page = ctx.api.call(self.key, "count objects", listing)
        except ApiCallFailed as error:
            return f"may hold objects: listing them failed (HTTP {error.status})"
        count = len((page or {}).get("items", []))
        if not count:
            return ""
        more = " or more" if (page or {}).get("nextPageToken") else ""
        return f"holds {count}{more} object version{'s' if count > 1 or more else ''}"

    def empty(self, ctx: Context) -> None:
        """Delete every object version, a page at a time."""
        objects = ctx.api.client("storage", "v1").objects()
        listed = ctx.api.list_all(
            self.key,
            "items",
            lambda token: objects.list(bucket=self.name, versions=True, pageToken=token),
        )
        for item in listed:
            request = functools.partial(
                objects.delete,
                bucket=self.name,
                object=item["name"],
                generation=item.get("generation"),
            )
            ctx.api.call(self.key, "delete object", request)

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        buckets = ctx.api.client("storage", "v1").buckets()
        found = ctx.api.list_all(
            "buckets", "items", lambda token: buckets.list(project=ctx.project, pageToken=token)
        )
        return [cls(f"bucket/{name}") for name in labelled(found, ctx)]
