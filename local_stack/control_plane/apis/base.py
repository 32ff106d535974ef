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

    def delete(self, plane: ControlPlane, request: Request, key: str) -> Answer | None:
        """Carry out a delete differently (refuse, soft-delete); None: the generic one."""
        return None

    def deleted(self, plane: ControlPlane, resource: dict[str, Any]) -> None:
        """What goes with a deleted resource."""

    def operation_name(self, resource: dict[str, Any], number: int) -> str:
        return f"operations/op-{number}"

    def respond(self, plane: ControlPlane, request: Request, payload: Any) -> Any:
        """The body as the API returns it (after the request is carried out)."""
        return payload
