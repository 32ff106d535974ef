"""One member in one role on one resource's IAM policy."""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

from gcp_stack.errors import ApiCallFailed, GcpStackError
from gcp_stack.resources.base import Context, Resource
from gcp_stack.resources.trigger_dead_letter import trigger_subscription

# Members of one policy are read-modify-written one at a time within a run: parallel
# writers would only race on the etag.
_POLICY_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
CONFLICT_ATTEMPTS = 6
# Read and write policies at version 3, so that conditional bindings someone else set
# survive our read-modify-write (https://cloud.google.com/iam/docs/policies#versions;
# Terraform: tpgiamresource IamPolicyVersion = 3, storage's optionsRequestedPolicyVersion).
POLICY_VERSION = 3
# An etag conflict: 409 from most APIs, 412 Precondition Failed from Cloud Storage
# (tpgresource/utils.go: IsConflictError).
CONFLICT_STATUS = frozenset({409, 412})
TARGET_KINDS = frozenset(
    {
        "project",
        "topic",
        "subscription",
        "bucket",
        "service_account",
        "run_service",
        "trigger_subscription",
    }
)


@dataclass
class IamMember(Resource):
    """One member in one role on one resource's IAM policy (read-modify-write with etag)."""

    # "project", "topic:<name>", "subscription:<name>", "bucket:<name>",
    # "service_account:<email>", "run_service:<name>", "trigger_subscription:<function>"
    target: str = ""
    role: str = ""
    member: str = ""
    kind: ClassVar[str] = "iam_member"

    def __post_init__(self) -> None:
        if self.target.partition(":")[0] not in TARGET_KINDS:
            raise GcpStackError(f"{self.key}: unknown IAM target {self.target!r}")

    def _policy_calls(self, ctx: Context):
        """(get, set) request factories for the target's policy; None if the target is absent."""
        kind, _, name = self.target.partition(":")
        if kind in ("trigger_subscription", "subscription"):
            path = (
                trigger_subscription(ctx, self.key, name)
                if kind == "trigger_subscription"
                else f"projects/{ctx.project}/subscriptions/{name}"
            )
            if path is None:
                return None
            subscriptions = ctx.api.client("pubsub", "v1").projects().subscriptions()
            return (
                lambda: subscriptions.getIamPolicy(
                    resource=path, options_requestedPolicyVersion=POLICY_VERSION
                ),
                lambda p: subscriptions.setIamPolicy(resource=path, body={"policy": p}),
            )
        if kind == "project":
            projects = ctx.api.client("cloudresourcemanager", "v1").projects()
            options = {"options": {"requestedPolicyVersion": POLICY_VERSION}}
            return (
                lambda: projects.getIamPolicy(resource=ctx.project, body=options),
                lambda p: projects.setIamPolicy(resource=ctx.project, body={"policy": p}),
            )
        if kind == "topic":
            topics = ctx.api.client("pubsub", "v1").projects().topics()
            path = f"projects/{ctx.project}/topics/{name}"
            return (
                lambda: topics.getIamPolicy(
                    resource=path, options_requestedPolicyVersion=POLICY_VERSION
                ),
                lambda p: topics.setIamPolicy(resource=path, body={"policy": p}),
            )
        if kind == "bucket":
            buckets = ctx.api.client("storage", "v1").buckets()
            return (
                lambda: buckets.getIamPolicy(
                    bucket=name, optionsRequestedPolicyVersion=POLICY_VERSION
                ),
                lambda p: buckets.setIamPolicy(bucket=name, body=p),
            )
        if kind == "service_account":
            accounts = ctx.api.client("iam", "v1").projects().serviceAccounts()
            path = f"projects/{ctx.project}/serviceAccounts/{name}"
            return (
                lambda: accounts.getIamPolicy(
                    resource=path, options_requestedPolicyVersion=POLICY_VERSION
                ),
                lambda p: accounts.setIamPolicy(resource=path, body={"policy": p}),
            )
        if kind == "run_service":
            services = ctx.api.client("run", "v2").projects().locations().services()
            path = f"projects/{ctx.project}/locations/{ctx.region}/services/{name}"
            return (
                lambda: services.getIamPolicy(
                    resource=path, options_requestedPolicyVersion=POLICY_VERSION
                ),
                lambda p: services.setIamPolicy(resource=path, body={"policy": p}),
            )
        raise GcpStackError(f"{self.key}: unknown IAM target {self.target!r}")

    def _member(self, ctx: Context) -> str:
        return self.member.replace("{project_number}", ctx.project_number)

    def body(self, ctx: Context) -> dict[str, Any]:
        return {"role": self.role, "member": self._member(ctx)}

    def read(self, ctx: Context) -> dict[str, Any] | None:
        calls = self._policy_calls(ctx)
        if calls is None:
            return None
        policy = ctx.api.get_or_none(self.key, calls[0]) or {}
        for binding in policy.get("bindings", []):
            if (
                binding.get("role") == self.role
                and "condition" not in binding  # a conditional binding is another binding
                and self._member(ctx) in binding.get("members", [])
            ):
                return self.body(ctx)
        return None

    def _change(self, ctx: Context, add: bool) -> None:
        calls = self._policy_calls(ctx)
        if calls is None:
            if add:
                raise ApiCallFailed(self.key, "set policy", 404, f"{self.target} does not exist")
            return
        get, put = calls
        with _POLICY_LOCKS[self.target]:
            for attempt in range(CONFLICT_ATTEMPTS):
                policy = ctx.api.call(self.key, "read policy", get) or {}
                policy["bindings"] = self._edited(policy.get("bindings", []), ctx, add)
                policy["version"] = POLICY_VERSION
                try:
                    ctx.api.call(self.key, "set policy", functools.partial(put, policy))
                    return
                except ApiCallFailed as error:
                    if error.status not in CONFLICT_STATUS:  # only an etag conflict: read again
                        raise
                    time.sleep(min(0.1 * 2**attempt, 2.0))
        raise ApiCallFailed(
            self.key, "set policy", 409, f"the policy kept changing ({CONFLICT_ATTEMPTS} tries)"
        )

    def follows(self) -> dict[str, str]:
        # The trigger's subscription is re-created with a new trigger: bind on the new one.
        if not self.target.startswith("trigger_subscription:"):
            return {}
        return {dep: "eventTrigger" for dep in self.depends_on if dep.startswith("function/")}

    def _edited(self, bindings: list[dict], ctx: Context, add: bool) -> list[dict]:
        bindings = [copy.deepcopy(b) for b in bindings]
        member = self._member(ctx)
        binding = next(
            (b for b in bindings if b.get("role") == self.role and "condition" not in b), None
        )
        if add and binding is None:
            bindings.append({"role": self.role, "members": [member]})
        elif add and binding is not None and member not in binding["members"]:
            binding["members"].append(member)
        elif not add and binding is not None:
            binding["members"] = [m for m in binding["members"] if m != member]
            bindings = [b for b in bindings if b["members"]]
        return bindings

    def create(self, ctx: Context) -> None:
        self._change(ctx, add=True)

    def update(self, ctx: Context, mask: list[str]) -> None:
        self._change(ctx, add=True)

    def delete(self, ctx: Context) -> None:
        self._change(ctx, add=False)
