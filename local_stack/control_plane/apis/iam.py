"""IAM: service accounts are named by their e-mail; Workload Identity pools and providers
are created ACTIVE, soft-deleted and undeleted.

https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/create
https://cloud.google.com/iam/docs/manage-workload-identity-pools-providers#delete-pool
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request
from local_stack.control_plane.errors import GoogleError

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane


class Iam(ApiRules):
    api: ClassVar[str] = "iam"

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
