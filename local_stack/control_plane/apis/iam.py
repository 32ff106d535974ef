"""IAM: service accounts are named by their e-mail; Workload Identity pools and providers
are created ACTIVE, soft-deleted and undeleted; IAM policies (of every API) follow IAM's
version and etag rules.

https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/create
https://cloud.google.com/iam/docs/manage-workload-identity-pools-providers#delete-pool
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request
from local_stack.control_plane.errors import GoogleError

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

# Service account ids: 6-30 characters, RFC 1035 (terraform-provider-google
# verify/validation.go: ServiceAccountNameRegex = RFC1035NameTemplate "{4,28}").
ACCOUNT_ID = re.compile(r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$")
# Pool and provider ids: 4-32 of [a-z0-9-], not starting "gcp-" (services/iambeta/
# resource_iam_workload_identity_pool{,_provider}.go: ValidateWorkloadIdentityPool*Id; the
# iam v1 discovery document: "must be 4-32 characters").
POOL_ID = re.compile(r"^[0-9a-z-]{4,32}$")


def _invalid(message: str) -> GoogleError:
    return GoogleError(400, message, "INVALID_ARGUMENT")


def visible(plane: ControlPlane, email: str, settle: float = 1.0) -> bool:
    """A new service account is invisible for a while: IAM is eventually consistent.
    https://cloud.google.com/iam/docs/overview#consistency. Reads find it first; policies
    and deployments later (`settle` times the delay): Terraform polls for three consecutive
    reads after a create and then still sleeps, "We can't guarantee complete consistency
    even after polling" (resource_google_service_account.go)."""
    born = plane.born.get(email)
    return born is None or time.monotonic() - born >= plane.fidelity.account_propagation * settle


def refuse_invisible(plane: ControlPlane, emails: list[str]) -> None:
    for email in emails:
        if email and not visible(plane, email, settle=2.0):
            # The message Terraform's IamServiceAccountNotFound predicate matches.
            raise _invalid(f"Service account {email} does not exist.")


class Iam(ApiRules):
    api: ClassVar[str] = "iam"

    def check(self, plane: ControlPlane, request: Request) -> None:
        if not plane.fidelity.id_rules or request.action != "create":
            return
        if request.name.endswith("/serviceAccounts"):
            account = request.body.get("accountId", "")
            if not ACCOUNT_ID.match(account):
                raise _invalid(
                    f"Invalid value for field 'accountId': '{account}'. Service account ids "
                    "must be between 6 and 30 characters, lowercase letters, digits and "
                    "dashes, starting with a letter and not ending with a dash."
                )
        for parameter in ("workloadIdentityPoolId", "workloadIdentityPoolProviderId"):
            value = request.query.get(parameter)
            if value is not None and (not POOL_ID.match(value) or value.startswith("gcp-")):
                raise _invalid(
                    f"Invalid value for field '{parameter}': '{value}'. It must be 4-32 "
                    "characters of lowercase letters, digits and dashes, and must not start "
                    "with 'gcp-'."
                )

    def get(self, plane: ControlPlane, request: Request) -> dict[str, Any]:
        resource = plane.store[plane.key(self.api, request.name)]
        if "/serviceAccounts/" in request.name and not visible(plane, resource.get("email", "")):
            raise KeyError(request.name)
        return resource

    def name_created(self, plane: ControlPlane, request: Request) -> tuple[str, str] | None:
        if not request.name.endswith("/serviceAccounts"):
            return None
        project = request.name.split("/")[1]
        email = f"{request.body['accountId']}@{project}.iam.gserviceaccount.com"
        return f"{request.name}/{email}", ""

    def created(self, plane: ControlPlane, name: str, resource: dict[str, Any]) -> None:
        if "/serviceAccounts/" in name:
            account = resource.pop("serviceAccount", {})
            resource.pop("accountId", None)
            resource.update(account)
            resource["email"] = name.rsplit("/", 1)[-1]
            resource["uniqueId"] = str(plane.next_id())
            if plane.fidelity.account_propagation:
                plane.born[resource["email"]] = time.monotonic()
        if "workloadIdentityPools" in name:
            resource["state"] = "ACTIVE"

    def action(self, plane: ControlPlane, request: Request) -> Answer | None:
        if request.action != "undelete":
            return None
        resource = plane.store[plane.key(self.api, request.name)]
        if resource.get("state") != "DELETED":
            raise GoogleError(400, f"{request.name} is not deleted", "FAILED_PRECONDITION")
        resource["state"] = "ACTIVE"
        return 200, plane.operation(request.method, resource)

    def delete(self, plane: ControlPlane, request: Request, key: str) -> Answer | None:
        resource = plane.store[key]
        if "workloadIdentityPools" in key and resource.get("state") == "ACTIVE":
            # Soft delete: kept as DELETED for 30 days, its name taken until undeleted.
            resource["state"] = "DELETED"
            return 200, plane.operation(request.method, resource)
        return None

    def operation_name(self, resource: dict[str, Any], number: int) -> str:
        return f"{resource.get('name')}/operations/op-{number}"


# -- IAM policies, for every API's get/setIamPolicy ---------------------------------------


def _requested_version(request: Request) -> int:
    raw = (
        request.query.get("options.requestedPolicyVersion")
        or request.query.get("optionsRequestedPolicyVersion")  # Cloud Storage
        or request.body.get("options", {}).get("requestedPolicyVersion")  # Resource Manager
        or 1
    )
    return int(raw)


def as_requested(plane: ControlPlane, request: Request, policy: dict[str, Any]) -> dict[str, Any]:
    """A policy with conditional bindings, read without asking for version 3, comes back as
    version 1 with each conditional binding's role renamed `<role>_withcond_<hash>` and its
    condition left out. https://cloud.google.com/iam/docs/policies#versions"""
    conditional = any("condition" in b for b in policy.get("bindings", []))
    if not plane.fidelity.policy_versions or not conditional or _requested_version(request) >= 3:
        return policy
    bindings = []
    for binding in policy["bindings"]:
        if "condition" in binding:
            digest = hashlib.sha256(repr(binding["condition"]).encode()).hexdigest()[:16]
            binding = {"role": f"{binding['role']}_withcond_{digest}",
                       "members": binding["members"]}  # fmt: skip
        bindings.append(binding)
    return policy | {"version": 1, "bindings": bindings}


def check_policy(plane: ControlPlane, policy: dict[str, Any]) -> None:
    """What setIamPolicy refuses: a member that is a service account not yet visible, and
    (with policy versions on) conditions under a version below 3 or a `_withcond_` role
    written back. https://cloud.google.com/iam/docs/policies#versions"""
    members = [m for b in policy.get("bindings", []) for m in b.get("members", [])]
    emails = [m.removeprefix("serviceAccount:") for m in members if m.startswith("serviceAccount:")]
    refuse_invisible(plane, emails)
    if not plane.fidelity.policy_versions:
        return
    for binding in policy.get("bindings", []):
        if "_withcond_" in binding.get("role", ""):
            raise _invalid(
                f"Role {binding['role']} is a conditional role binding read at policy version "
                "1; request policy version 3 to read and write it."
            )
        if "condition" in binding and int(policy.get("version", 1)) < 3:
            raise _invalid("Policy with conditional bindings must use version 3.")


def stale_etag_status(plane: ControlPlane, request: Request) -> int:
    """Cloud Storage answers a stale etag with 412 Precondition Failed, the others with 409
    (tpgresource/utils.go: IsConflictError treats both as a conflict)."""
    return 412 if plane.fidelity.policy_versions and request.api == "storage" else 409
