"""What every resource kind shares: the Resource surface, the apply Context, references.

    name → body() (declared fields only) → read(ctx) (None when absent)
         → create(ctx) / update(ctx, mask) / delete(ctx)

The engine diffs body() against what read() returns, field by field, so output-only and
server-defaulted fields never cause an update; a change to a field in `immutable` plans a
replacement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gcp_stack.api import Api

STACK_LABEL = "skybridge-stack"
# Maps we own only the keys of: an update keeps the keys someone else put there.
MERGED_MAPS = ("labels", "userLabels")
REFERENCE = re.compile(r"\{output:([^}]+)\}")


@dataclass
class Context:
    api: Api
    project: str
    region: str
    artifact: Any = None  # deployment.packaging.Artifact, for function sources
    project_number: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → live outputs
    stack: str = ""  # the value of STACK_LABEL on everything this stack owns
    live: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → last read state


def resolve(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    """Replace `{output:<key>:<field>}` with another resource's live output."""
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    if isinstance(value, str) and REFERENCE.search(value):

        def lookup(match: re.Match) -> str:
            key, _, name = match.group(1).rpartition(":")
            return str(outputs.get(key, {}).get(name) or match.group(0))

        return REFERENCE.sub(lookup, value)
    return value


@dataclass
class Resource:
    key: str  # unique logical id, "kind/name"
    depends_on: tuple[str, ...] = ()
    kind: ClassVar[str] = "resource"
    immutable: ClassVar[frozenset[str]] = frozenset()
    deletable: ClassVar[bool] = True
    # The map that carries STACK_LABEL ("": the kind has no labels). A live resource of a
    # labelled kind without our label is someone else's: never adopted or deleted unasked.
    label_field: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]

    def body(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def owned_by(self, live: dict[str, Any], ctx: Context) -> bool:
        """Whether the live resource is this stack's (always, for kinds without labels)."""
        if not self.label_field:
            return True
        return (live.get(self.label_field) or {}).get(STACK_LABEL) == ctx.stack

    def owned_body(self, ctx: Context) -> dict[str, Any]:
        """body() for an update: label maps keep the keys we did not declare, since an
        update mask names the whole map (someone else's `team=other` label survives)."""
        body = self.body(ctx)
        live = ctx.live.get(self.key) or {}
        for name in MERGED_MAPS:
            if isinstance(body.get(name), dict) and isinstance(live.get(name), dict):
                body[name] = live[name] | body[name]
        return body

    def read(self, ctx: Context) -> dict[str, Any] | None:
        raise NotImplementedError

    def create(self, ctx: Context) -> None:
        raise NotImplementedError

    def update(self, ctx: Context, mask: list[str]) -> None:
        raise NotImplementedError

    def delete(self, ctx: Context) -> None:
        raise NotImplementedError

    def holds_data(self, ctx: Context, live: dict[str, Any]) -> str:
        """What deleting the live resource would lose, in a few words ("": nothing), such
        as "holds 3 objects"; the plan marks its delete or replace as destroying data."""
        return ""

    def empty(self, ctx: Context) -> None:
        """Delete the data it holds, before a delete that the user allowed to lose it
        (`--allow-destroy-data`); most kinds delete their data with themselves."""

    def outputs(self, live: dict[str, Any]) -> dict[str, Any]:
        return {}

    def unhealthy(self, live: dict[str, Any]) -> str:
        """Why the live resource needs redeploying although its fields match ("": it does
        not), such as a function whose deployment FAILED."""
        return ""

    def follows(self) -> dict[str, str]:
        """Dependencies whose change Google lets reset this resource, so that it is applied
        again after them (a trigger change re-creates the trigger's subscription): key →
        the top-level field whose change matters ("": any change)."""
        return {}

    @classmethod
    def discover(cls, ctx: Context) -> list[Resource]:
        """Live resources of this kind labelled as this stack's (for orphan detection)."""
        return []


def labelled(items: list[dict[str, Any]], ctx: Context) -> list[str]:
    """Short names of the items whose stack label is this stack's."""
    return [
        item["name"].rsplit("/", 1)[-1]
        for item in items
        if ctx.stack and (item.get("labels") or {}).get(STACK_LABEL) == ctx.stack
    ]


def operation_getter(ctx: Context, api: str, version: str):
    client = ctx.api.client(api, version)
    if api == "iam":
        pools = client.projects().locations().workloadIdentityPools()

        def get(name: str):
            owner = pools.providers() if "/providers/" in name else pools
            return owner.operations().get(name=name)

        return get
    if api == "cloudfunctions":
        return lambda name: client.projects().locations().operations().get(name=name)
    return lambda name: client.operations().get(name=name)
