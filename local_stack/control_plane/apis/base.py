"""What one Google API does differently from the generic resource-oriented behaviour.

The server (`server.py`) carries out get / list / create / patch / delete, IAM policies
and long-running operations the same way for every API. Each API's own rules — how it
names what it creates, what it fills in, what it refuses, its custom verbs — live in one
module per API under `apis/`, as a subclass of `ApiRules` overriding only the hooks it
needs. Fidelity rules that a test can switch on (`Fidelity`) go in the same hooks, each
guarded by its flag and with its source cited next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from local_stack.control_plane import discovery
from local_stack.control_plane.discovery import Method

if TYPE_CHECKING:
    from local_stack.control_plane.server import ControlPlane

Answer = tuple[int, Any]


@dataclass
class Request:
    method: Method
    path: str  # below the service path, e.g. "v1/projects/p/topics/t:publish"
    name: str  # the resource name: version prefix and ":verb" removed
    query: dict[str, str]
    body: dict[str, Any]

    @property
    def api(self) -> str:
        return self.method.api

    @property
    def action(self) -> str:
        return self.method.action


class ApiRules:
    """The generic behaviour; each API module overrides what its API does differently."""

    api: ClassVar[str] = ""
    delete_status: ClassVar[int] = 200
    # Responses are proto3 JSON: zero, false and empty values are left out. Every API we
    # use but Cloud Storage's JSON API. https://protobuf.dev/programming-guides/json/
    # ("fields set to the default value are omitted")
    proto3: ClassVar[bool] = True

    def check(self, plane: ControlPlane, request: Request) -> None:
        """Before anything is carried out: raise GoogleError to refuse the request."""

    def action(self, plane: ControlPlane, request: Request) -> Answer | None:
        """A verb of this API's own (`:enable`, `:undelete`, …); None: not one."""
        return None

    def get(self, plane: ControlPlane, request: Request) -> dict[str, Any]:
        """A read; a KeyError means 404."""
        return plane.store[plane.key(request.api, request.name)]

    def name_created(self, plane: ControlPlane, request: Request) -> tuple[str, str] | None:
        """(stored name, the name the API reports) of what a create makes; None: generic."""
        return None

    def created(self, plane: ControlPlane, name: str, resource: dict[str, Any]) -> None:
        """Fill in what the API adds on create (state, URLs, …), in place."""

    def patched(
        self, plane: ControlPlane, request: Request, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        """What follows from an update (a rebuild, a new trigger), in place on `after`."""

    def listed(self, plane: ControlPlane, request: Request, key: str) -> bool:
        """Whether the stored `key` belongs in this list (beyond sitting under its parent)."""
        return True

    def delete(self, plane: ControlPlane, request: Request, key: str) -> Answer | None:
        """Carry out a delete differently (refuse, soft-delete); None: the generic one."""
        return None

    def deleted(self, plane: ControlPlane, resource: dict[str, Any]) -> None:
        """What goes with a deleted resource."""

    def failure(self, resource: dict[str, Any]) -> str:
        """Why the operation that made or changed `resource` failed ("": it did not)."""
        return ""

    def operation_name(self, resource: dict[str, Any], number: int) -> str:
        return f"operations/op-{number}"

    def respond(self, plane: ControlPlane, request: Request, payload: Any) -> Any:
        """The body as the API returns it (after the request is carried out)."""
        if not (self.proto3 and plane.fidelity.proto3_omission):
            return payload
        document = discovery.document(request.method.api, request.method.version)
        return omit_defaults(document, request.method.spec.get("response", {}), payload)


def omit_defaults(document: dict[str, Any], schema: dict[str, Any], value: Any) -> Any:
    """`value` as proto3 JSON prints it: fields at their default (0, false, "", empty list,
    an enum's zero value) left out; map entries are kept whatever their value."""
    if "$ref" in schema:
        schema = document["schemas"].get(schema["$ref"], {})
    if isinstance(value, dict) and "properties" in schema:
        kept = {}
        for key, item in value.items():
            item = omit_defaults(document, schema["properties"].get(key, {}), item)
            if not _default(item):
                kept[key] = item
        return kept
    if isinstance(value, dict) and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return {key: omit_defaults(document, extra, item) for key, item in value.items()}
    if isinstance(value, list):
        return [omit_defaults(document, schema.get("items", {}), item) for item in value]
    return value


def _default(value: Any) -> bool:
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return value in ("", "0") or value.endswith("_UNSPECIFIED")
    return value in ([], {})
