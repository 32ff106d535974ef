"""Plan and apply: read live state, diff declared fields, change what differs, in order.

The plan is data — a list of Change records with before/after values — that prints as
text or JSON; apply takes a plan. Reads run in parallel; changes run in parallel wherever
the dependency graph allows; a failed change stops its dependents, never the others, and
running deploy again finishes the job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gcp_stack.errors import ApiCallFailed, ApplyFailed, GcpStackError
from gcp_stack.resources import KINDS, STACK_LABEL, Context, Resource

Action = Literal["create", "update", "replace", "delete", "no-op", "conflict"]


@dataclass
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass
class Change:
    key: str
    kind: str
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    reason: str = ""  # why, when the fields alone do not say (a repair, a re-apply)

    @property
    def mask(self) -> list[str]:
        return update_mask(self.fields)


@dataclass
class Plan:
    changes: list[Change]

    @property
    def pending(self) -> list[Change]:
        return [change for change in self.changes if change.action != "no-op"]

    @property
    def conflicts(self) -> list[Change]:
        return [change for change in self.changes if change.action == "conflict"]

    def to_json(self) -> str:
        return json.dumps({"changes": [asdict(change) for change in self.changes]}, indent=2)

    def summary(self) -> str:
        counts = {action: 0 for action in ("create", "update", "replace", "delete", "conflict")}
        for change in self.pending:
            counts[change.action] += 1
        return ", ".join(f"{n} to {a}" for a, n in counts.items() if n) or "no changes"


def update_mask(fields: list[FieldChange]) -> list[str]:
    """The top-level fields to send: each changed declared field's outermost name."""
    return sorted({change.path.split(".")[0] for change in fields})


def diff(desired: Any, live: Any, path: str = "") -> list[FieldChange]:
    """Field-level differences of what we declared; fields we did not declare are ignored.

    Google's proto3-based APIs leave out every field at its default (0, false, "", [], {},
    an enum's *_UNSPECIFIED; https://protobuf.dev/programming-guides/json/), so a declared
    default and an absent live value are the same thing.
    """
    if live is None and _default(desired):
        return []
    if isinstance(desired, dict):
        if live is None:
            live = {}  # an omitted message: compare field by field with nothing
        if not isinstance(live, dict):
            return [FieldChange(path, live, desired)]
        changes: list[FieldChange] = []
        for key, value in desired.items():
            changes += diff(value, live.get(key), f"{path}.{key}" if path else key)
        return changes
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [FieldChange(path, live, desired)]
        if any(diff(d, v) for d, v in zip(desired, live, strict=True)):
            return [FieldChange(path, live, desired)]
        return []
    if isinstance(desired, int | float) and isinstance(live, str):
        live = _number(live)  # int64 fields come back as strings
    return [] if desired == live else [FieldChange(path, live, desired)]


def _moves(changes: list[Change], key: str, part: str) -> bool:
    """Whether the plan so far changes `key` (its field `part`, or anything when "")."""
    change = next((c for c in changes if c.key == key), None)
    if change is None or change.action in ("no-op", "delete"):
        return False
    changed = {f.path.split(".")[0] for f in change.fields}
    return change.action != "update" or not part or bool(changed & {part, "state"})


def _default(value: Any) -> bool:
    """Whether proto3 JSON leaves `value` out."""
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return value == "" or value.endswith("_UNSPECIFIED")
    if isinstance(value, dict):
        return all(_default(item) for item in value.values())
    return value == []


def _number(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value


class Engine:
    def __init__(self, resources: list[Resource], ctx: Context, parallelism: int = 8) -> None:
        self.resources = {resource.key: resource for resource in resources}
        self.ctx = ctx
        self.parallelism = max(1, parallelism)
        self.outputs = ctx.outputs
        self._check_graph()

    def _check_graph(self) -> None:
        for resource in self.resources.values():
            for dependency in resource.depends_on:
                if dependency not in self.resources:
                    raise GcpStackError(f"{resource.key} depends on unknown {dependency}")
        self.order()  # raises on a cycle

    def order(self) -> list[str]:
        done: list[str] = []
        visiting: set[str] = set()

        def visit(key: str) -> None:
            if key in done:
                return
            if key in visiting:
                raise GcpStackError(f"dependency cycle through {key}")
            visiting.add(key)
            for dependency in self.resources[key].depends_on:
                visit(dependency)
            visiting.discard(key)
            done.append(key)

        for key in self.resources:
            visit(key)
        return done

    def desired(self, resource: Resource) -> dict[str, Any]:
        return resource.body(self.ctx)

    # -- plan -----------------------------------------------------------------------------

    def read_all(self) -> dict[str, dict | None]:
        return self._observe(discover=False)[1]

    def orphans(self) -> list[Resource]:
        """Live resources labelled as this stack's that the stack no longer declares."""
        return self._observe(read=False)[0]

    def _observe(
        self, discover: bool = True, read: bool = True
    ) -> tuple[list[Resource], dict[str, dict | None]]:
        """Find labelled resources and read declared ones, all in one pool of requests."""
        kinds: set[type[Resource]] = set()
        if discover:
            kinds = {*KINDS, *map(type, self.resources.values())}
        with ThreadPoolExecutor(self.parallelism) as pool:
            finds = [pool.submit(kind.discover, self.ctx) for kind in kinds]
            reads = {
                key: pool.submit(resource.read, self.ctx)
                for key, resource in (self.resources.items() if read else ())
            }
            found = [resource for future in finds for resource in future.result()]
            live = {key: future.result() for key, future in reads.items()}
        for key, state in live.items():
            if state:
                self.outputs[key] = self.resources[key].outputs(state)
                self.ctx.live[key] = state
        return [r for r in found if r.key not in self.resources], live

    def plan(self, destroy: bool = False) -> Plan:
        orphans, live = self._observe()
        changes = [Change(o.key, o.kind, "delete") for o in orphans]
        declared = self.order()
        self.resources.update({orphan.key: orphan for orphan in orphans})
        for key in declared:
            resource = self.resources[key]
            deps = list(resource.depends_on)
            current = live[key]
            theirs = current is not None and not resource.owned_by(current, self.ctx)
            if destroy:
                action: Action = "delete" if current and resource.deletable else "no-op"
                reason = "not this stack's (no stack label): left alone" if theirs else ""
                changes.append(Change(key, resource.kind, "no-op" if theirs else action,
                                      depends_on=deps, reason=reason))  # fmt: skip
                continue
            if theirs:
                reason = (
                    f"exists but is not this stack's (no {STACK_LABEL}={self.ctx.stack} label): "
                    f"adopt it with `python -m gcp_stack import '{key}'`, or remove or rename it"
                )
                changes.append(Change(key, resource.kind, "conflict", depends_on=deps,
                                      reason=reason))  # fmt: skip
                continue
            if current is None:
                after = self.desired(resource)
                fields = [FieldChange(path, None, value) for path, value in after.items()]
                changes.append(Change(key, resource.kind, "create", fields, deps))
                continue
            desired = self.desired(resource)
            fields = diff(desired, current)
            broken = resource.unhealthy(current)
            moved = [dep for dep, part in resource.follows().items() if _moves(changes, dep, part)]
            if broken:
                repair = FieldChange("state", broken, "redeployed")
                reason = f"live state is {broken}: redeploy"
                changes.append(
                    Change(key, resource.kind, "update", [repair, *fields], deps, reason=reason)
                )
            elif fields and {f.path.split(".")[0] for f in fields} & resource.immutable:
                changes.append(Change(key, resource.kind, "replace", fields, deps))
            elif fields:
                changes.append(Change(key, resource.kind, "update", fields, deps))
            elif moved:
                # Google resets this when what it follows changes (a trigger change gives the
                # function a new subscription): apply it again after that.
                again = [FieldChange(k, current.get(k), v) for k, v in desired.items()]
                reason = f"re-applied after {', '.join(moved)} changes"
                changes.append(Change(key, resource.kind, "update", again, deps, reason=reason))
            else:
                changes.append(Change(key, resource.kind, "no-op", depends_on=deps))
        return Plan(changes)

    # -- apply ----------------------------------------------------------------------------

    def apply(self, plan: Plan, progress: Callable[[str, str], None] = lambda *_: None) -> None:
        """Carry out a plan: in parallel, each change once the changes it waits for are done."""
        if plan.conflicts:
            keys = ", ".join(change.key for change in plan.conflicts)
            raise GcpStackError(f"refusing to apply: {keys} exist but are not this stack's")
        pending = {change.key: change for change in plan.pending}
        if pending.keys() - self.resources.keys():  # a plan made elsewhere: find its orphans
            self.resources.update({orphan.key: orphan for orphan in self.orphans()})

        def waits_for(key: str) -> set[str]:
            # Creates and updates follow their dependencies; a delete waits for the deletes
            # of everything that depends on it.
            if pending[key].action == "delete":
                return {
                    other
                    for other, change in pending.items()
                    if change.action == "delete" and key in self.resources[other].depends_on
                }
            return {
                dep
                for dep in self.resources[key].depends_on
                if dep in pending and pending[dep].action != "delete"
            }

        blockers = {key: waits_for(key) for key in pending}
        failures: dict[str, BaseException] = {}
        done: set[str] = set()
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(self.parallelism) as pool:
            while len(done) + len(failures) < len(pending):
                blocked = {
                    key
                    for key in pending
                    if key not in done and key not in failures and blockers[key] & failures.keys()
                }
                for key in blocked:
                    failures.setdefault(key, _Skipped())
                for key, change in pending.items():
                    if (
                        key in done
                        or key in failures
                        or key in running.values()
                        or not blockers[key] <= done
                    ):
                        continue
                    progress(key, change.action)
                    running[pool.submit(self._carry_out, change)] = key
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    key = running.pop(future)
                    failure = future.exception()
                    if failure is not None:
                        failures[key] = failure
                        progress(key, "failed")
                    else:
                        done.add(key)
                        progress(key, "done")
        real = {k: e for k, e in failures.items() if not isinstance(e, _Skipped)}
        if failures:
            raise ApplyFailed(
                real, sorted(k for k, e in failures.items() if isinstance(e, _Skipped))
            )

    def _carry_out(self, change: Change) -> None:
        resource = self.resources[change.key]
        if change.action in ("delete", "replace"):
            resource.delete(self.ctx)
        if change.action in ("create", "replace"):
            self._create(resource)
        elif change.action == "update":
            resource.update(self.ctx, change.mask)
        if change.action != "delete":
            live = resource.read(self.ctx)
            if live:
                self.outputs[change.key] = resource.outputs(live)

    def _create(self, resource: Resource) -> None:
        try:
            resource.create(self.ctx)
        except ApiCallFailed as error:
            if error.status != 409:
                raise
            # It exists after all: an earlier attempt whose answer was lost (or a run
            # interrupted after it) created it. Converge it like any live resource.
            live = resource.read(self.ctx)
            if live is None:
                raise
            fields = diff(self.desired(resource), live)
            if fields:
                resource.update(self.ctx, update_mask(fields))


class _Skipped(Exception):
    """A change not attempted because one it depends on failed."""
