"""Cloud Logging: a log-based metric's short name (`name` in the body) is its id.

https://cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics/create
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from local_stack.control_plane.apis.base import ApiRules, Request

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane


class Logging(ApiRules):
    api: ClassVar[str] = "logging"

    def name_created(self, plane: ControlPlane, request: Request) -> tuple[str, str] | None:
        short = request.body.get("name", "")
        if request.name.endswith("/metrics") and short and "/" not in short:
            return f"{request.name}/{short}", short
        return None
