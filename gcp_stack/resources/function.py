"""A Cloud Function (2nd gen), HTTP or Pub/Sub-triggered, built from the runtime artifact."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from gcp_stack import retries
from gcp_stack.errors import ApiCallFailed
from gcp_stack.resources.base import Context, Resource, labelled, operation_getter


@dataclass
class Function(Resource):
    entry_point: str = ""
    runtime: str = "python312"
    service_account: str = ""
    # Builds run as this account: since 2024 a new project's default Cloud Build account may
    # lack the permissions (https://cloud.google.com/functions/docs/securing/build-custom-sa).
    build_service_account: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    trigger_topic: str = ""  # a Pub/Sub trigger when set, else HTTP
    max_instances: int = 20
    memory: str = "256Mi"
    location: str = ""  # another region than the stack's: an orphan found there
    label_field: ClassVar[str] = "labels"
    kind: ClassVar[str] = "function"

    @property
    def name(self) -> str:
        return super().name.split("@", 1)[0]  # "function/<name>@<region>" for other regions

    def path(self, ctx: Context) -> str:
        return (
            f"projects/{ctx.project}/locations/{self.location or ctx.region}/functions/{self.name}"
        )

    def _functions(self, ctx: Context):
        return ctx.api.client("cloudfunctions", "v2").projects().locations().functions()

    def body(self, ctx: Context) -> dict[str, Any]:
        source_sha = ctx.artifact.sha256[:12] if ctx.artifact else "none"
        body: dict[str, Any] = {
            "environment": "GEN_2",
            "labels": self.labels | {"source-sha": source_sha},
            "buildConfig": {"runtime": self.runtime, "entryPoint": self.entry_point}
            | self._builder(ctx),
            "serviceConfig": {
                "availableMemory": self.memory,
                "timeoutSeconds": 60,
                "maxInstanceCount": self.max_instances,
                "ingressSettings": "ALLOW_ALL",  # authenticated: only the relay SA may invoke
                "serviceAccountEmail": self.service_account,
                "environmentVariables": self.environment,
                "allTrafficOnLatestRevision": True,
            },
        }
        if self.trigger_topic:
            body["eventTrigger"] = {
                "triggerRegion": ctx.region,
                "eventType": "google.cloud.pubsub.topic.v1.messagePublished",
                "pubsubTopic": f"projects/{ctx.project}/topics/{self.trigger_topic}",
                "retryPolicy": "RETRY_POLICY_RETRY",
                "serviceAccountEmail": self.service_account,
            }
        return body

    def _builder(self, ctx: Context) -> dict[str, str]:
        if not self.build_service_account:
            return {}
        return {
            "serviceAccount": f"projects/{ctx.project}/serviceAccounts/{self.build_service_account}"
        }

    def _with_source(self, ctx: Context) -> dict[str, Any]:
        """Upload the runtime artifact (generateUploadUrl + PUT) and point the build at it."""
        parent = f"projects/{ctx.project}/locations/{ctx.region}"
        upload = ctx.api.call(
            self.key,
            "upload source",
            lambda: self._functions(ctx).generateUploadUrl(parent=parent, body={}),
        )
        import requests

        session = requests.Session()
        session.trust_env = False
        try:
            response = session.put(
                upload["uploadUrl"],
                data=ctx.artifact.path.read_bytes(),
                headers={"Content-Type": "application/zip"},
                timeout=300,
            )
            response.raise_for_status()
        except requests.RequestException as error:
            status = error.response.status_code if error.response is not None else 0
            raise ApiCallFailed(self.key, "upload source", status, str(error)) from None
        body = self.owned_body(ctx)
        body["buildConfig"]["source"] = {"storageSource": upload["storageSource"]}
        return body

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(self.key, lambda: self._functions(ctx).get(name=self.path(ctx)))

    def create(self, ctx: Context) -> None:
        def attempt(number: int) -> None:
            if number:  # the first deployment FAILED: deploy the function again
                self.update(ctx, ["state"])
                return
            body = self._with_source(ctx)
            parent = f"projects/{ctx.project}/locations/{ctx.region}"
            op = ctx.api.call(
                self.key,
                "create",
                lambda: self._functions(ctx).create(parent=parent, functionId=self.name, body=body),
            )
            ctx.api.wait(self.key, "create", op, operation_getter(ctx, "cloudfunctions", "v2"))

        ctx.api.repeat(self.key, "create", attempt, retries.EVENTARC_AGENT)

    def update(self, ctx: Context, mask: list[str]) -> None:
        if "state" in mask:  # a repair: redeploy everything we declare
            mask = sorted(self.body(ctx))
        if "labels" in mask and "buildConfig" not in mask:
            mask = [*mask, "buildConfig"]  # a new source: rebuild
        # The mask replaces buildConfig whole: without the source the build would have none.
        body = self._with_source(ctx) if "buildConfig" in mask else self.owned_body(ctx)
        op = ctx.api.call(
            self.key,
            "update",
            lambda: self._functions(ctx).patch(
                name=self.path(ctx), updateMask=",".join(mask), body=body
            ),
        )
        ctx.api.wait(self.key, "update", op, operation_getter(ctx, "cloudfunctions", "v2"))

    def delete(self, ctx: Context) -> None:
        op = ctx.api.call(
            self.key, "delete", lambda: self._functions(ctx).delete(name=self.path(ctx))
        )
        ctx.api.wait(self.key, "delete", op, operation_getter(ctx, "cloudfunctions", "v2"))

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {"url": live.get("url") or live.get("serviceConfig", {}).get("uri")}

    def unhealthy(self, live: dict[str, Any]) -> str:
        # "FAILED: Function deployment failed and the function is not serving" (State enum,
        # cloudfunctions v2 discovery document): matching fields do not make it deployed.
        if live.get("state") != "FAILED":
            return ""
        messages = [m.get("message", "") for m in live.get("stateMessages", [])]
        return "FAILED" + (f" ({'; '.join(messages)})" if messages else "")

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        # Every region ("locations/-"), so that a region change finds the old region's.
        functions = ctx.api.client("cloudfunctions", "v2").projects().locations().functions()
        parent = f"projects/{ctx.project}/locations/-"
        found = ctx.api.list_all(
            "functions", "functions", lambda token: functions.list(parent=parent, pageToken=token)
        )
        orphans: list[Resource] = []
        for item in found:
            if not labelled([item], ctx):
                continue
            region, name = item["name"].split("/")[3], item["name"].rsplit("/", 1)[-1]
            here = region == ctx.region
            key = f"function/{name}" if here else f"function/{name}@{region}"
            orphans.append(cls(key, location="" if here else region))
        return orphans
