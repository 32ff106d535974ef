"""Resource kinds: each one small, all with the same surface.

    name → body() (declared fields only) → read(ctx) (None when absent)
         → create(ctx) / update(ctx, mask) / delete(ctx)

The engine diffs body() against what read() returns, field by field, so output-only and
server-defaulted fields never cause an update; a change to a field in `immutable` plans a
replacement. Adding a kind means adding a class here, not touching the engine.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gcp_stack.api import Api
from gcp_stack.errors import ApiCallFailed, OperationFailed

STACK_LABEL = "skybridge-stack"
REFERENCE = re.compile(r"\{output:([^}]+)\}")


@dataclass
class Context:
    api: Api
    project: str
    region: str
    artifact: Any = None  # runtime.packaging.Artifact, for function sources
    project_number: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → live outputs
    stack: str = ""  # the value of STACK_LABEL on everything this stack owns


def resolve(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    """Replace `{output:<key>:<field>}` with another resource's live output."""
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    if isinstance(value, str) and REFERENCE.search(value):

        def lookup(match: re.Match) -> str:
            key, _, name = match.group(1).rpartition(":")
            return str(outputs.get(key, {}).get(name) or match.group(0))

        return REFERENCE.sub(lookup, value)
    return value


@dataclass
class Resource:
    key: str  # unique logical id, "kind/name"
    depends_on: tuple[str, ...] = ()
    kind: ClassVar[str] = "resource"
    immutable: ClassVar[frozenset[str]] = frozenset()
    deletable: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]

    def body(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, ctx: Context) -> dict[str, Any] | None:
        raise NotImplementedError

    def create(self, ctx: Context) -> None:
        raise NotImplementedError

    def update(self, ctx: Context, mask: list[str]) -> None:
        raise NotImplementedError

    def delete(self, ctx: Context) -> None:
        raise NotImplementedError

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {}

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        """Live resources of this kind labelled as this stack's (for orphan detection)."""
        return []


def _labelled(items: list[dict[str, Any]], ctx: Context) -> list[str]:
    """Short names of the items whose stack label is this stack's."""
    return [
        item["name"].rsplit("/", 1)[-1]
        for item in items
        if ctx.stack and (item.get("labels") or {}).get(STACK_LABEL) == ctx.stack
    ]


def _op_getter(ctx: Context, api: str, version: str):
    client = ctx.api.client(api, version)
    if api == "iam":
        pools = client.projects().locations().workloadIdentityPools()

        def get(name: str):
            owner = pools.providers() if "/providers/" in name else pools
            return owner.operations().get(name=name)

        return get
    if api == "cloudfunctions":
        return lambda name: client.projects().locations().operations().get(name=name)
    return lambda name: client.operations().get(name=name)


# -- service usage --------------------------------------------------------------------------


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
        ctx.api.wait(self.key, "enable", op, _op_getter(ctx, "serviceusage", "v1"))

    def delete(self, ctx: Context) -> None:  # pragma: no cover — never planned (deletable=False)
        return None


# -- IAM service accounts -------------------------------------------------------------------


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


# -- Pub/Sub ----------------------------------------------------------------------------------


@dataclass
class Topic(Resource):
    labels: dict[str, str] = field(default_factory=dict)
    retention: str = "604800s"
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
        body = {"topic": self.body(ctx), "updateMask": ",".join(mask)}
        ctx.api.call(
            self.key, "update", lambda: self._topics(ctx).patch(name=self.path(ctx), body=body)
        )

    def delete(self, ctx: Context) -> None:
        ctx.api.call(self.key, "delete", lambda: self._topics(ctx).delete(topic=self.path(ctx)))

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        topics = ctx.api.client("pubsub", "v1").projects().topics()
        found = ctx.api.call(
            "topics", "list", lambda: topics.list(project=f"projects/{ctx.project}")
        )
        return [cls(f"topic/{name}") for name in _labelled((found or {}).get("topics", []), ctx)]


@dataclass
class Subscription(Resource):
    topic: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ack_deadline_seconds: int = 60
    retention: str = "604800s"
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
        body = {"subscription": self.body(ctx), "updateMask": ",".join(mask)}
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

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        subscriptions = ctx.api.client("pubsub", "v1").projects().subscriptions()
        found = ctx.api.call(
            "subscriptions", "list", lambda: subscriptions.list(project=f"projects/{ctx.project}")
        )
        items = (found or {}).get("subscriptions", [])
        return [cls(f"subscription/{name}") for name in _labelled(items, ctx)]


# -- Cloud Storage ----------------------------------------------------------------------------


@dataclass
class Bucket(Resource):
    location: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    retention_days: int = 365
    force_destroy: bool = False  # set by `destroy --force`
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
            "lifecycle": {
                "rule": [
                    {"action": {"type": "SetStorageClass", "storageClass": "NEARLINE"},
                     "condition": {"age": 30}},
                    {"action": {"type": "Delete"},
                     "condition": {"age": self.retention_days}},
                    {"action": {"type": "Delete"},
                     "condition": {"isLive": False, "daysSinceNoncurrentTime": 30}},
                ]
            },
        }  # fmt: skip

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(self.key, lambda: self._buckets(ctx).get(bucket=self.name))

    def create(self, ctx: Context) -> None:
        body = {"name": self.name} | self.body(ctx)
        ctx.api.call(
            self.key, "create", lambda: self._buckets(ctx).insert(project=ctx.project, body=body)
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        body = {key: value for key, value in self.body(ctx).items() if key in mask}
        ctx.api.call(
            self.key, "update", lambda: self._buckets(ctx).patch(bucket=self.name, body=body)
        )

    def delete(self, ctx: Context) -> None:
        if self.force_destroy:
            objects = ctx.api.client("storage", "v1").objects()
            listing = ctx.api.call(
                self.key, "list objects", lambda: objects.list(bucket=self.name, versions=True)
            )
            for item in (listing or {}).get("items", []):
                ctx.api.call(
                    self.key,
                    "delete object",
                    lambda item=item: objects.delete(
                        bucket=self.name, object=item["name"], generation=item.get("generation")
                    ),
                )
        ctx.api.call(self.key, "delete", lambda: self._buckets(ctx).delete(bucket=self.name))

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        buckets = ctx.api.client("storage", "v1").buckets()
        found = ctx.api.call("buckets", "list", lambda: buckets.list(project=ctx.project))
        return [cls(f"bucket/{name}") for name in _labelled((found or {}).get("items", []), ctx)]


# -- IAM bindings -----------------------------------------------------------------------------


@dataclass
class IamMember(Resource):
    """One member in one role on one resource's IAM policy (read-modify-write with etag)."""

    target: str = ""  # "project", "topic:<name>", "bucket:<name>", "service_account:<email>",
    #                    "run_service:<name>"
    role: str = ""
    member: str = ""
    kind: ClassVar[str] = "iam_member"

    def _policy_calls(self, ctx: Context):
        kind, _, name = self.target.partition(":")
        if kind == "project":
            projects = ctx.api.client("cloudresourcemanager", "v1").projects()
            return (
                lambda: projects.getIamPolicy(resource=ctx.project, body={}),
                lambda p: projects.setIamPolicy(resource=ctx.project, body={"policy": p}),
            )
        if kind == "topic":
            topics = ctx.api.client("pubsub", "v1").projects().topics()
            path = f"projects/{ctx.project}/topics/{name}"
            return (
                lambda: topics.getIamPolicy(resource=path),
                lambda p: topics.setIamPolicy(resource=path, body={"policy": p}),
            )
        if kind == "bucket":
            buckets = ctx.api.client("storage", "v1").buckets()
            return (
                lambda: buckets.getIamPolicy(bucket=name),
                lambda p: buckets.setIamPolicy(bucket=name, body=p),
            )
        if kind == "service_account":
            accounts = ctx.api.client("iam", "v1").projects().serviceAccounts()
            path = f"projects/{ctx.project}/serviceAccounts/{name}"
            return (
                lambda: accounts.getIamPolicy(resource=path),
                lambda p: accounts.setIamPolicy(resource=path, body={"policy": p}),
            )
        if kind == "run_service":
            services = ctx.api.client("run", "v2").projects().locations().services()
            path = f"projects/{ctx.project}/locations/{ctx.region}/services/{name}"
            return (
                lambda: services.getIamPolicy(resource=path),
                lambda p: services.setIamPolicy(resource=path, body={"policy": p}),
            )
        raise ValueError(f"{self.key}: unknown IAM target {self.target!r}")

    def _member(self, ctx: Context) -> str:
        return self.member.replace("{project_number}", ctx.project_number)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"role": self.role, "member": self._member(ctx)}

    def read(self, ctx: Context) -> dict[str, Any] | None:
        get, _ = self._policy_calls(ctx)
        policy = ctx.api.get_or_none(self.key, get) or {}
        for binding in policy.get("bindings", []):
            if binding.get("role") == self.role and self._member(ctx) in binding.get("members", []):
                return self.body(ctx)
        return None

    def _change(self, ctx: Context, add: bool) -> None:
        get, put = self._policy_calls(ctx)
        for _ in range(5):  # etag conflicts: someone else changed the policy; read again
            policy = ctx.api.call(self.key, "read policy", get) or {}
            bindings = [copy.deepcopy(b) for b in policy.get("bindings", [])]
            binding = next((b for b in bindings if b.get("role") == self.role), None)
            if add:
                if binding is None:
                    bindings.append({"role": self.role, "members": [self._member(ctx)]})
                elif self._member(ctx) not in binding["members"]:
                    binding["members"].append(self._member(ctx))
            elif binding is not None:
                binding["members"] = [m for m in binding["members"] if m != self._member(ctx)]
                bindings = [b for b in bindings if b["members"]]
            policy["bindings"] = bindings
            try:
                ctx.api.call(self.key, "set policy", lambda policy=policy: put(policy))
                return
            except ApiCallFailed as error:  # only an etag conflict is retried
                if error.status != 409:
                    raise

    def create(self, ctx: Context) -> None:
        self._change(ctx, add=True)

    def update(self, ctx: Context, mask: list[str]) -> None:
        self._change(ctx, add=True)

    def delete(self, ctx: Context) -> None:
        self._change(ctx, add=False)


# -- Workload Identity Federation -------------------------------------------------------------


@dataclass
class WorkloadIdentityPool(Resource):
    description: str = ""
    kind: ClassVar[str] = "workload_identity_pool"

    def path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/locations/global/workloadIdentityPools/{self.name}"

    def _pools(self, ctx: Context):
        return ctx.api.client("iam", "v1").projects().locations().workloadIdentityPools()

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"displayName": self.name[:32], "description": self.description, "disabled": False}

    def read(self, ctx: Context) -> dict[str, Any] | None:
        live = ctx.api.get_or_none(self.key, lambda: self._pools(ctx).get(name=self.path(ctx)))
        return live if live and live.get("state") != "DELETED" else None

    def create(self, ctx: Context) -> None:
        parent = f"projects/{ctx.project}/locations/global"
        op = ctx.api.call(
            self.key,
            "create",
            lambda: self._pools(ctx).create(
                parent=parent, workloadIdentityPoolId=self.name, body=self.body(ctx)
            ),
        )
        ctx.api.wait(self.key, "create", op, _op_getter(ctx, "iam", "v1"))

    def update(self, ctx: Context, mask: list[str]) -> None:
        op = ctx.api.call(
            self.key,
            "update",
            lambda: self._pools(ctx).patch(
                name=self.path(ctx), updateMask=",".join(mask), body=self.body(ctx)
            ),
        )
        ctx.api.wait(self.key, "update", op, _op_getter(ctx, "iam", "v1"))

    def delete(self, ctx: Context) -> None:
        op = ctx.api.call(self.key, "delete", lambda: self._pools(ctx).delete(name=self.path(ctx)))
        ctx.api.wait(self.key, "delete", op, _op_getter(ctx, "iam", "v1"))


@dataclass
class AwsProvider(Resource):
    """An AWS provider that admits only the relay's role of the configured AWS account."""

    pool: str = ""
    account: str = ""
    role_name: str = ""
    kind: ClassVar[str] = "workload_identity_provider"
    immutable: ClassVar[frozenset[str]] = frozenset({"aws"})

    def path(self, ctx: Context) -> str:
        return (
            f"projects/{ctx.project}/locations/global/workloadIdentityPools/{self.pool}"
            f"/providers/{self.name}"
        )

    def _providers(self, ctx: Context):
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

    def read(self, ctx: Context) -> dict[str, Any] | None:
        live = ctx.api.get_or_none(self.key, lambda: self._providers(ctx).get(name=self.path(ctx)))
        return live if live and live.get("state") != "DELETED" else None

    def create(self, ctx: Context) -> None:
        parent = self.path(ctx).rsplit("/providers/", 1)[0]
        op = ctx.api.call(
            self.key,
            "create",
            lambda: self._providers(ctx).create(
                parent=parent, workloadIdentityPoolProviderId=self.name, body=self.body(ctx)
            ),
        )
        ctx.api.wait(self.key, "create", op, _op_getter(ctx, "iam", "v1"))

    def update(self, ctx: Context, mask: list[str]) -> None:
        op = ctx.api.call(
            self.key,
            "update",
            lambda: self._providers(ctx).patch(
                name=self.path(ctx), updateMask=",".join(mask), body=self.body(ctx)
            ),
        )
        ctx.api.wait(self.key, "update", op, _op_getter(ctx, "iam", "v1"))

    def delete(self, ctx: Context) -> None:
        op = ctx.api.call(
            self.key, "delete", lambda: self._providers(ctx).delete(name=self.path(ctx))
        )
        ctx.api.wait(self.key, "delete", op, _op_getter(ctx, "iam", "v1"))


# -- Cloud Functions (2nd gen) ----------------------------------------------------------------


@dataclass
class Function(Resource):
    entry_point: str = ""
    runtime: str = "python312"
    service_account: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    trigger_topic: str = ""  # a Pub/Sub trigger when set, else HTTP
    max_instances: int = 20
    memory: str = "256Mi"
    kind: ClassVar[str] = "function"

    def path(self, ctx: Context) -> str:
        return f"projects/{ctx.project}/locations/{ctx.region}/functions/{self.name}"

    def _functions(self, ctx: Context):
        return ctx.api.client("cloudfunctions", "v2").projects().locations().functions()

    def body(self, ctx: Context) -> dict[str, Any]:
        source_sha = ctx.artifact.sha256[:12] if ctx.artifact else "none"
        body: dict[str, Any] = {
            "environment": "GEN_2",
            "labels": self.labels | {"source-sha": source_sha},
            "buildConfig": {"runtime": self.runtime, "entryPoint": self.entry_point},
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
        response = session.put(
            upload["uploadUrl"],
            data=ctx.artifact.path.read_bytes(),
            headers={"Content-Type": "application/zip"},
            timeout=300,
        )
        response.raise_for_status()
        body = self.body(ctx)
        body["buildConfig"]["source"] = {"storageSource": upload["storageSource"]}
        return body

    def read(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.api.get_or_none(self.key, lambda: self._functions(ctx).get(name=self.path(ctx)))

    def create(self, ctx: Context) -> None:
        body = self._with_source(ctx)
        parent = f"projects/{ctx.project}/locations/{ctx.region}"
        op = ctx.api.call(
            self.key,
            "create",
            lambda: self._functions(ctx).create(parent=parent, functionId=self.name, body=body),
        )
        ctx.api.wait(self.key, "create", op, _op_getter(ctx, "cloudfunctions", "v2"))

    def update(self, ctx: Context, mask: list[str]) -> None:
        body = self._with_source(ctx) if "labels" in mask else self.body(ctx)
        if "labels" in mask and "buildConfig" not in mask:
            mask = [*mask, "buildConfig"]  # a new source: rebuild
        op = ctx.api.call(
            self.key,
            "update",
            lambda: self._functions(ctx).patch(
                name=self.path(ctx), updateMask=",".join(mask), body=body
            ),
        )
        ctx.api.wait(self.key, "update", op, _op_getter(ctx, "cloudfunctions", "v2"))

    def delete(self, ctx: Context) -> None:
        op = ctx.api.call(
            self.key, "delete", lambda: self._functions(ctx).delete(name=self.path(ctx))
        )
        ctx.api.wait(self.key, "delete", op, _op_getter(ctx, "cloudfunctions", "v2"))

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {"url": live.get("url") or live.get("serviceConfig", {}).get("uri")}

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        functions = ctx.api.client("cloudfunctions", "v2").projects().locations().functions()
        parent = f"projects/{ctx.project}/locations/{ctx.region}"
        found = ctx.api.call("functions", "list", lambda: functions.list(parent=parent))
        items = (found or {}).get("functions", [])
        return [cls(f"function/{name}") for name in _labelled(items, ctx)]


@dataclass
class TriggerDeadLetterPolicy(Resource):
    """Dead-lettering on the subscription Eventarc created for a function's Pub/Sub trigger.

    Cloud Functions has no dead-letter setting of its own: the policy goes on the trigger's
    subscription, whose name is read from the live function and its Eventarc trigger.
    """

    function: str = ""
    dead_letter_topic: str = ""
    max_delivery_attempts: int = 5
    kind: ClassVar[str] = "trigger_dead_letter_policy"

    def body(self, ctx: Context) -> dict[str, Any]:
        return {
            "deadLetterPolicy": {
                "deadLetterTopic": f"projects/{ctx.project}/topics/{self.dead_letter_topic}",
                "maxDeliveryAttempts": self.max_delivery_attempts,
            },
            "retryPolicy": {"minimumBackoff": "10s", "maximumBackoff": "600s"},
        }

    def _subscription(self, ctx: Context) -> str | None:
        functions = ctx.api.client("cloudfunctions", "v2").projects().locations().functions()
        name = f"projects/{ctx.project}/locations/{ctx.region}/functions/{self.function}"
        live = ctx.api.get_or_none(self.key, lambda: functions.get(name=name))
        trigger = (live or {}).get("eventTrigger", {}).get("trigger")
        if not trigger:
            return None
        triggers = ctx.api.client("eventarc", "v1").projects().locations().triggers()
        found = ctx.api.get_or_none(self.key, lambda: triggers.get(name=trigger))
        return (found or {}).get("transport", {}).get("pubsub", {}).get("subscription")

    def read(self, ctx: Context) -> dict[str, Any] | None:
        subscription = self._subscription(ctx)
        if subscription is None:
            return None
        subscriptions = ctx.api.client("pubsub", "v1").projects().subscriptions()
        live = ctx.api.get_or_none(self.key, lambda: subscriptions.get(subscription=subscription))
        return live if live and "deadLetterPolicy" in live else None

    def create(self, ctx: Context) -> None:
        self.update(ctx, ["deadLetterPolicy", "retryPolicy"])

    def update(self, ctx: Context, mask: list[str]) -> None:
        subscription = self._subscription(ctx)
        if subscription is None:
            raise OperationFailed(self.key, "update", f"function {self.function} has no trigger")
        subscriptions = ctx.api.client("pubsub", "v1").projects().subscriptions()
        body = {"subscription": self.body(ctx), "updateMask": ",".join(mask)}
        ctx.api.call(self.key, "update", lambda: subscriptions.patch(name=subscription, body=body))

    def delete(self, ctx: Context) -> None:
        return None  # goes with the function's trigger


# -- Logging and Monitoring ---------------------------------------------------------------------


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


@dataclass
class MonitoringObject(Resource):
    """A Monitoring object whose name the server assigns (alert policy, notification channel,
    uptime check, dashboard): found again by its display name, which the stack keeps unique."""

    spec: dict[str, Any] = field(default_factory=dict)
    collection: ClassVar[str] = ""
    version: ClassVar[str] = "v3"
    kind: ClassVar[str] = "monitoring"

    def _collection(self, ctx: Context):
        projects = ctx.api.client("monitoring", self.version).projects()
        return getattr(projects, self.collection)()

    def _parent(self, ctx: Context) -> dict[str, str]:
        return {"parent" if self.version == "v1" else "name": f"projects/{ctx.project}"}

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"displayName": self.name} | resolve(self.spec, ctx.outputs)

    def read(self, ctx: Context) -> dict[str, Any] | None:
        listing = (
            ctx.api.call(
                self.key,
                "read",
                lambda: self._collection(ctx).list(**self._parent(ctx) | self._list_args()),
            )
            or {}
        )
        items = next((v for v in listing.values() if isinstance(v, list)), [])
        return next((item for item in items if item.get("displayName") == self.name), None)

    def _list_args(self) -> dict[str, str]:
        return {}

    def create(self, ctx: Context) -> None:
        args = self._parent(ctx)
        if self.collection == "uptimeCheckConfigs":
            args = {"parent": args.pop("name")}
        ctx.api.call(
            self.key, "create", lambda: self._collection(ctx).create(**args, body=self.body(ctx))
        )

    def update(self, ctx: Context, mask: list[str]) -> None:
        live = self.read(ctx) or {}
        body = self.body(ctx) | {"name": live.get("name")}
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

    def _parent(self, ctx: Context) -> dict[str, str]:
        return {"parent": f"projects/{ctx.project}"}


@dataclass
class Dashboard(MonitoringObject):
    collection: ClassVar[str] = "dashboards"
    version: ClassVar[str] = "v1"
    kind: ClassVar[str] = "dashboard"
