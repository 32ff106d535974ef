"""Cloud Storage JSON API: buckets are named by their `name` field, deletes answer 204, and
a bucket that still holds objects cannot be deleted.

https://cloud.google.com/storage/docs/json_api/v1/buckets/delete
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request
from local_stack.control_plane.errors import GoogleError

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane


class Storage(ApiRules):
    api: ClassVar[str] = "storage"
    delete_status: ClassVar[int] = 204

    def name_created(self, plane: ControlPlane, request: Request) -> tuple[str, str] | None:
        return f"b/{request.body['name']}", request.body["name"]

    def delete(self, plane: ControlPlane, request: Request, key: str) -> Answer | None:
        if "/o/" not in key and any(other.startswith(key + "/o/") for other in plane.store):
            raise GoogleError(
                409, "The bucket you tried to delete is not empty.", "FAILED_PRECONDITION"
            )
        return None
