"""Cloud Storage JSON API: buckets are named by their `name` field and belong to the project
they were inserted in (`buckets.list` lists one project's), deletes answer 204, and a bucket
that still holds objects cannot be deleted. Its JSON is not proto3: values are explicit.

https://cloud.google.com/storage/docs/json_api/v1/buckets/delete
https://cloud.google.com/storage/docs/json_api/v1/buckets/list ("project: A valid API
project identifier", required)

`Fidelity.id_rules`: bucket names are 3-63 characters of lowercase letters, digits, dashes,
underscores and dots, start and end with a letter or digit, and neither start with "goog"
nor contain "google". https://cloud.google.com/storage/docs/buckets#naming
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane.apis.base import Answer, ApiRules, Request
from local_stack.control_plane.errors import GoogleError

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def _precondition_failed() -> GoogleError:
    # https://cloud.google.com/storage/docs/request-preconditions: a generation match that
    # does not hold is 412 (ifGenerationMatch=0: "only if no live object of that name").
    return GoogleError(
        412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet"
    )


def upload(plane: ControlPlane, path: str, query: dict[str, str], body: bytes) -> Answer:
    """objects.insert, the simple media upload: `/upload/storage/v1/b/<bucket>/o?name=…`."""
    bucket = path.split("/b/", 1)[1].split("/", 1)[0]
    name = query.get("name", "")
    key = plane.key("storage", f"b/{bucket}/o/{name}")
    with plane.lock:
        if plane.key("storage", f"b/{bucket}") not in plane.store:
            raise GoogleError(404, "The specified bucket does not exist.", "notFound")
        wanted = query.get("ifGenerationMatch")
        current = plane.store.get(key, {}).get("generation", "0")
        if wanted is not None and wanted != current:
            raise _precondition_failed()
        generation = str(plane.next_id())
        made = {"bucket": bucket, "name": name, "generation": generation, "size": str(len(body))}
        plane.store[key] = made
        plane.uploads[key] = body
    return 200, made


class Storage(ApiRules):
    api: ClassVar[str] = "storage"
    delete_status: ClassVar[int] = 204
    proto3: ClassVar[bool] = False

    def check(self, plane: ControlPlane, request: Request) -> None:
        if plane.fidelity.id_rules and request.method.id == "storage.buckets.insert":
            name = request.body.get("name", "")
            if not BUCKET.match(name) or name.startswith("goog") or "google" in name:
                raise GoogleError(400, f"Invalid bucket name: '{name}'", "INVALID_ARGUMENT")

    def name_created(self, plane: ControlPlane, request: Request) -> tuple[str, str] | None:
        name = f"b/{request.body['name']}"
        plane.projects[plane.key(self.api, name)] = request.query.get("project", "")
        return name, request.body["name"]

    def listed(self, plane: ControlPlane, request: Request, key: str) -> bool:
        if request.method.id != "storage.buckets.list":
            return True
        return plane.projects.get(key) == request.query.get("project")

    def get(self, plane: ControlPlane, request: Request) -> dict[str, Any]:
        resource = super().get(plane, request)
        if request.query.get("alt") == "media":  # the content (JSON, for what we store)
            return json.loads(plane.uploads.get(plane.key(self.api, request.name), b"null"))
        return resource

    def delete(self, plane: ControlPlane, request: Request, key: str) -> Answer | None:
        wanted = request.query.get("ifGenerationMatch")
        if wanted is not None and plane.store[key].get("generation") != wanted:
            raise _precondition_failed()
        if "/o/" not in key and any(other.startswith(key + "/o/") for other in plane.store):
            raise GoogleError(
                409, "The bucket you tried to delete is not empty.", "FAILED_PRECONDITION"
            )
        return None
