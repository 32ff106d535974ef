"""Cloud Resource Manager: every project exists, with one fixed project number."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import ApiRules, Request

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

PROJECT_NUMBER = "424242424242"


class ResourceManager(ApiRules):
    api: ClassVar[str] = "cloudresourcemanager"

    def get(self, plane: ControlPlane, request: Request) -> dict[str, Any]:
        return {"projectId": request.name.split("/")[-1], "projectNumber": PROJECT_NUMBER}
