"""Plan and apply: read live state, diff declared fields, change what differs, in order.

The plan is data — a list of Change records with before/after values — that prints as
text or JSON; apply takes a plan. Reads run in parallel; changes run in parallel wherever
the dependency graph allows; a failed change stops its dependents, never the others, and
running deploy again finishes the job.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import time
from collections.abc import Callable, Iterable
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
    # What a delete or replace would lose ("": nothing), e.g. "holds 3 objects".
    destroys_data: str = ""
    # Of the live state this change was computed from (see `fingerprint`), so that a saved
    # plan can tell whether the cloud moved since.
    fingerprint: str = ""

    @property
    def mask(self) -> list[str]:
        return update_mask(self.fields)


@dataclass
class Plan:
    changes: list[Change]
    destroy: bool = False

    @property
    def pending(self) -> list[Change]:
        return [change for change in self.changes if change.action != "no-op"]

    @property
    def conflicts(self) -> list[Change]:
        return [change for change in self.changes if change.action == "conflict"]

    @property
    def destructive(self) -> list[Change]:
        """Pending deletes and replaces of resources that hold data."""
        return [change for change in self.pending if change.destroys_data]

    def counts(self) -> dict[str, int]:
        counts = {action: 0 for action in ("create", "update", "replace", "delete", "conflict")}
        for change in self.pending:
            counts[change.action] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "destroy": self.destroy,
            "summary": self.counts(),
            "changes": [asdict(change) for change in self.changes],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        counts = self.counts()
        return ", ".join(f"{n} to {a}" for a, n in counts.items() if n) or "no changes"


@dataclass
class Applied:
    """One change carried out (or not): what `apply` reports, with its wall time."""

    key: str
    action: Action
    status: Literal["done", "failed", "skipped"]
    seconds: float = 0.0
    error: str = ""


def fingerprint(live: dict[str, Any] | None, destroys_data: str = "") -> str:
    """A short hash of a live state (and of whether it holds data): equal means unmoved."""
    if live is None:
        return "absent"
    text = json.dumps([live, bool(destroys_data)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class DataLoss(GcpStackError):
    def __init__(self, changes: list[Change]) -> None:
        lost = "; ".join(f"{c.key} ({c.destroys_data})" for c in changes)
        super().__init__(
            f"refusing to {' and '.join(sorted({c.action for c in changes}))} what holds data: "
            f"{lost}; pass --allow-destroy-data to let it go"
        )
        self.changes = changes


class UnknownKey(GcpStackError):
    def __init__(self, option: str, key: str, known: Iterable[str]) -> None:
        close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.5)
        hint = (
            f"did you mean {' or '.join(repr(k) for k in close)}?"
            if close
            else ("`python -m gcp_stack plan` lists the keys")
        )
        super().__init__(f"{option} {key!r} is not a resource of this stack: {hint}")


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
        self.declared = dict(self.resources)  # without the orphans plan() adds
        self.ctx = ctx
        self.parallelism = max(1, parallelism)
        self.outputs = ctx.outputs
        self.applied: list[Applied] = []
        self._emptied: set[str] = set()  # keys whose data apply may delete
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

    def desired_hash(self) -> str:
        """A hash of the desired state (every declared resource's key, kind, dependencies
        and body, references unresolved): equal means the configuration did not change."""
        bare = dataclasses.replace(self.ctx, outputs={}, live={})
        desired = [
            [key, resource.kind, sorted(resource.depends_on), resource.body(bare)]
            for key, resource in sorted(self.declared.items())
        ]
        text = json.dumps(desired, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def scope(self, targets: Iterable[str], destroy: bool) -> set[str]:
        """The targets and what they depend on (deploy) or what depends on them (destroy),
        as Terraform's -target."""
        found: set[str] = set()
        edges = {key: set(resource.depends_on) for key, resource in self.resources.items()}
        if destroy:
            edges = {key: {o for o, deps in edges.items() if key in deps} for key in edges}
        todo = list(targets)
        while todo:
            key = todo.pop()
            if key not in found:
                found.add(key)
                todo.extend(edges.get(key, ()))
        return found

    def check_keys(self, option: str, keys: Iterable[str]) -> None:
        for key in keys:
            if key not in self.resources:
                raise UnknownKey(option, key, self.resources)

    def plan(
        self, destroy: bool = False, targets: Iterable[str] = (), replace: Iterable[str] = ()
    ) -> Plan:
        targets, replace = list(targets), set(replace)
        if destroy and replace:
            raise GcpStackError("--replace plans a deploy, not a destroy: leave it out")
        orphans, live = self._observe()
        self.resources.update({orphan.key: orphan for orphan in orphans})
        self.check_keys("--target", targets)
        self.check_keys("--replace", replace)
        scope = self.scope(targets, destroy) if targets else set(self.resources)
        with ThreadPoolExecutor(self.parallelism) as pool:  # orphans are found, not read
            reads = {o.key: pool.submit(o.read, self.ctx) for o in orphans if o.key in scope}
            live |= {key: future.result() for key, future in reads.items()}
        changes = [Change(o.key, o.kind, "delete") for o in orphans if o.key in scope]
        for key in self.order():
            if key in scope and key in self.declared:
                changes.append(self._change(key, live[key], changes, destroy, key in replace))
        for change in changes:
            state = live.get(change.key)
            if change.action in ("delete", "replace") and state is not None:
                change.destroys_data = self.resources[change.key].holds_data(self.ctx, state)
            change.fingerprint = fingerprint(state, change.destroys_data)
        return Plan(changes, destroy=destroy)

    def _change(
        self,
        key: str,
        current: dict[str, Any] | None,
        changes: list[Change],
        destroy: bool,
        replace: bool,
    ) -> Change:
        resource = self.resources[key]
        deps = list(resource.depends_on)
        theirs = current is not None and not resource.owned_by(current, self.ctx)
        if destroy:
            action: Action = "delete" if current and resource.deletable else "no-op"
            reason = "not this stack's (no stack label): left alone" if theirs else ""
            return Change(key, resource.kind, "no-op" if theirs else action, depends_on=deps,
                          reason=reason)  # fmt: skip
        if theirs:
            reason = (
                f"exists but is not this stack's (no {STACK_LABEL}={self.ctx.stack} label): "
                f"adopt it with `python -m gcp_stack import '{key}'`, or remove or rename it"
            )
            return Change(key, resource.kind, "conflict", depends_on=deps, reason=reason)
        if current is None:
            after = self.desired(resource)
            fields = [FieldChange(path, None, value) for path, value in after.items()]
            return Change(key, resource.kind, "create", fields, deps)
        desired = self.desired(resource)
        fields = diff(desired, current)
        if replace:
            if not resource.deletable:
                raise GcpStackError(f"--replace {key}: a {resource.kind} is never deleted")
            return Change(key, resource.kind, "replace", fields, deps,
                          reason="replace requested with --replace")  # fmt: skip
        broken = resource.unhealthy(current)
        moved = [dep for dep, part in resource.follows().items() if _moves(changes, dep, part)]
        if broken:
            repair = FieldChange("state", broken, "redeployed")
            reason = f"live state is {broken}: redeploy"
            return Change(key, resource.kind, "update", [repair, *fields], deps, reason=reason)
        if fields and {f.path.split(".")[0] for f in fields} & resource.immutable:
            return Change(key, resource.kind, "replace", fields, deps)
        if fields:
            return Change(key, resource.kind, "update", fields, deps)
        if moved:
            # Google resets this when what it follows changes (a trigger change gives the
            # function a new subscription): apply it again after that.
            again = [FieldChange(k, current.get(k), v) for k, v in desired.items()]
            reason = f"re-applied after {', '.join(moved)} changes"
            return Change(key, resource.kind, "update", again, deps, reason=reason)
        return Change(key, resource.kind, "no-op", depends_on=deps)

    def moved(self, plan: Plan) -> list[str]:
        """Keys of the plan's pending changes whose live state is not what the plan saw.

        Reads those resources again and nothing else but their direct dependencies, whose
        outputs (a channel's name, a trigger's subscription) their bodies may refer to."""
        pending = plan.pending
        if {change.key for change in pending} - self.resources.keys():
            self.resources.update({orphan.key: orphan for orphan in self.orphans()})
        moved = [change.key for change in pending if change.key not in self.resources]
        touched = {change.key for change in pending} & self.resources.keys()
        needed = touched | {dep for key in touched for dep in self.resources[key].depends_on}
        with ThreadPoolExecutor(self.parallelism) as pool:
            reads = {key: pool.submit(self.resources[key].read, self.ctx) for key in needed}
            live = {key: future.result() for key, future in reads.items()}
        for key, state in live.items():
            if state is not None:
                self.ctx.live[key] = state
                self.outputs[key] = self.resources[key].outputs(state)
        for change in pending:
            if change.key not in touched:
                continue
            resource, state, data = self.resources[change.key], live[change.key], ""
            if change.action in ("delete", "replace") and state is not None:
                data = resource.holds_data(self.ctx, state)
            if fingerprint(state, data) == change.fingerprint:
                continue
            # Moved to where the change was going (the lock enabled Cloud Storage since):
            # applying it converges, as a plan made now would say.
            arrived = (
                change.action in ("create", "update")
                and state is not None
                and resource.owned_by(state, self.ctx)
                and not diff(self.desired(resource), state)
            )
            if not arrived:
                moved.append(change.key)
        return moved

    # -- apply ----------------------------------------------------------------------------

    def apply(
        self,
        plan: Plan,
        progress: Callable[[Applied | Change], None] = lambda _: None,
        allow_destroy_data: bool = False,
    ) -> list[Applied]:
        """Carry out a plan: in parallel, each change once the changes it waits for are done.

        `progress` hears of each change when it starts (the Change) and when it ends (its
        Applied record, with the wall time); `self.applied` holds the records so far, also
        when apply stops part-way. A change that would lose data (`destroys_data`) needs
        `allow_destroy_data`, which also lets it delete that data first (Terraform's
        force_destroy)."""
        self.applied = []
        if plan.conflicts:
            keys = ", ".join(change.key for change in plan.conflicts)
            raise GcpStackError(f"refusing to apply: {keys} exist but are not this stack's")
        if plan.destructive and not allow_destroy_data:
            raise DataLoss(plan.destructive)
        self._emptied = {change.key for change in plan.destructive}
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
        started: dict[str, float] = {}

        def record(key: str, status: Literal["done", "failed", "skipped"], error: str = "") -> None:
            seconds = time.monotonic() - started[key] if key in started else 0.0
            self.applied.append(Applied(key, pending[key].action, status, seconds, error))
            progress(self.applied[-1])

        with ThreadPoolExecutor(self.parallelism) as pool:
            while len(done) + len(failures) < len(pending):
                blocked = {
                    key
                    for key in pending
                    if key not in done and key not in failures and blockers[key] & failures.keys()
                }
                for key in blocked - failures.keys():
                    failures[key] = _Skipped()
                    record(key, "skipped")
                for key, change in pending.items():
                    if (
                        key in done
                        or key in failures
                        or key in running.values()
                        or not blockers[key] <= done
                    ):
                        continue
                    started[key] = time.monotonic()
                    progress(change)
                    running[pool.submit(self._carry_out, change)] = key
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    key = running.pop(future)
                    failure = future.exception()
                    if failure is not None:
                        failures[key] = failure
                        record(key, "failed", str(failure))
                    else:
                        done.add(key)
                        record(key, "done")
        real = {k: e for k, e in failures.items() if not isinstance(e, _Skipped)}
        if failures:
            raise ApplyFailed(
                real, sorted(k for k, e in failures.items() if isinstance(e, _Skipped))
            )
        return self.applied

    def _carry_out(self, change: Change) -> None:
        resource = self.resources[change.key]
        if change.key in self._emptied:
            resource.empty(self.ctx)
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
