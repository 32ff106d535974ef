"""The files `python -m gcp_stack` hands on about a change, defined once.

- A plan (`PlanDocument`): what `plan --json` prints and `plan --out FILE` writes; `deploy
  FILE` applies exactly it. It names the stack, environment, project and region, a hash of
  the desired state it was made from, and every change with its before/after fields and a
  fingerprint of the live state it was computed from.
- An apply summary (`ApplySummary`): what `deploy`/`destroy --summary-out FILE` write (and
  `--json` prints last): added / changed / destroyed, as Terraform counts them (a replace
  is one added and one destroyed), and each change's wall time.

Both carry `format_version`; a reader refuses a version it does not know. docs/gcp.md
shows both. A plan file that is there but unusable is a `PlanFileError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from environments import EnvironmentFileError

FORMAT_VERSION = 1
Action = Literal["create", "update", "replace", "delete", "no-op", "conflict"]


class PlanFileError(EnvironmentFileError):
    """A plan file that cannot be applied; the message says why and how to fix it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldChange(_Model):
    path: str
    before: Any = None
    after: Any = None


class PlannedChange(_Model):
    key: str
    kind: str
    action: Action
    fields: list[FieldChange] = []
    depends_on: list[str] = []
    reason: str = ""
    destroys_data: str = ""  # what a delete or replace would lose ("": nothing)
    fingerprint: str = ""  # of the live state the change was computed from ("absent")


class PlanCounts(_Model):
    create: int = 0
    update: int = 0
    replace: int = 0
    delete: int = 0
    conflict: int = 0


class PlanDocument(_Model):
    type: Literal["plan"] = "plan"
    format_version: int = FORMAT_VERSION
    stack: str
    env: str
    project: str
    region: str
    destroy: bool = False
    targets: list[str] = []
    replace: list[str] = []
    allow_destroy_data: bool = False  # consent given at plan time, as -out keeps options
    desired_hash: str  # of the configuration the plan was made from
    summary: PlanCounts
    destroys_data: list[str] = []  # keys of the changes that lose data
    changes: list[PlannedChange]


class AppliedChange(_Model):
    key: str
    action: Action
    status: Literal["done", "failed", "skipped"]
    seconds: float
    error: str = ""


class ApplySummary(_Model):
    type: Literal["apply_summary"] = "apply_summary"
    format_version: int = FORMAT_VERSION
    stack: str
    env: str
    project: str
    region: str
    command: Literal["deploy", "destroy"]
    status: Literal["applied", "no changes", "failed"]
    added: int
    changed: int
    destroyed: int
    failed: int = 0
    skipped: int = 0
    seconds: float  # the apply's wall time
    changes: list[AppliedChange] = []


def write(document: PlanDocument | ApplySummary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document.model_dump_json(indent=2) + "\n")


def read_plan(path: Path) -> PlanDocument:
    again = f"make it again with `python -m gcp_stack plan --out {path}`"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanFileError(f"plan file {path} does not exist: {again}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PlanFileError(f"plan file {path} is not readable JSON ({error}): {again}") from None
    if not isinstance(raw, dict) or raw.get("type") != "plan":
        raise PlanFileError(f"{path} is not a gcp_stack plan file: {again}")
    if raw.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(
            f"plan file {path} has format version {raw.get('format_version')!r}, this "
            f"gcp_stack reads version {FORMAT_VERSION}: {again}"
        )
    try:
        return PlanDocument.model_validate(raw)
    except ValidationError as error:
        item = error.errors()[0]
        where = ".".join(str(part) for part in item["loc"])
        raise PlanFileError(f"plan file {path}: {where}: {item['msg']}: {again}") from None
