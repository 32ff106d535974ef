"""Service Usage: `services.enable` records the service as ENABLED; reading a service never
enabled answers DISABLED (not 404).

https://cloud.google.com/service-usage/docs/reference/rest/v1/services/get
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane


class ServiceUsage(ApiRules):
    api: ClassVar[str] = "serviceusage"

    def action(self, plane: ControlPlane, request: Request) -> Answer | None:
        if request.action != "enable":
            return None
        resource = {
            "name": request.name,
            "state": "ENABLED",
            "config": {"name": request.name.rsplit("/", 1)[-1]},
        }
        plane.store[plane.key(self.api, request.name)] = resource
        return 200, plane.operation(request.method, resource)

    def get(self, plane: ControlPlane, request: Request) -> dict[str, Any]:
        disabled = {"name": request.name, "state": "DISABLED"}
        return plane.store.get(plane.key(self.api, request.name), disabled)
