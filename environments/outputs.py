"""The files the two stacks hand each other, defined once.

- `gcp-outputs/<env>.json`: what `python -m gcp_stack deploy` hands the AWS side
  (`GcpOutputs`; written by gcp_stack, read by the CDK app and smoke).
- `cdk-outputs/<env>.json`: what `cdk deploy --outputs-file` writes (`AwsOutputs`: stack
  name → output name → value; read by gcp_stack for the uptime check and by smoke).

A file that is there but malformed is an `OutputsFileError` naming the file, what is wrong
and how to fix it; a file that is not there is `None` (each caller decides what that means).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from environments import DIRECTORY, EnvironmentFileError

ROOT = DIRECTORY.parent


class OutputsFileError(EnvironmentFileError):
    """An outputs file exists but cannot be used; the message says how to fix it."""


class GcpOutputs(BaseModel):
    """What the GCP half tells the AWS half after a deploy."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    project: str
    region: str
    ingest_url: str  # the ingest function's URL, also the audience of the relay's ID tokens
    credential_config: dict[str, Any]  # google-auth external_account configuration (aws1)
    service_account: str  # the relay's service account e-mail
    bucket: str
    topic: str
    dead_letter_topic: str
    receipts_topic: str  # where store publishes a receipt for every stored object
    receipts_subscription: str  # the relay's pull subscription on it (its only subscriber)


class AwsOutputs(BaseModel):
    """`cdk deploy --outputs-file`: {stack name: {output name: value}}."""

    model_config = ConfigDict(frozen=True)

    stacks: dict[str, dict[str, str]]

    def value(self, name: str) -> str | None:
        """An output by name from whichever stack has it (`ApiUrl`, …)."""
        return next((outputs[name] for outputs in self.stacks.values() if name in outputs), None)

    @property
    def api_url(self) -> str | None:
        return self.value("ApiUrl")


def gcp_path(env: str, directory: Path | None = None) -> Path:
    return (directory or ROOT / "gcp-outputs") / f"{env}.json"


def aws_path(env: str, directory: Path | None = None) -> Path:
    return (directory or ROOT / "cdk-outputs") / f"{env}.json"


def write_gcp(outputs: GcpOutputs, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(outputs.model_dump_json(indent=2) + "\n")


def _load(path: Path, how_to_fix: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise OutputsFileError(f"{path} is not readable JSON ({error}): {how_to_fix}") from None


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'the file'}: {item['msg']}"
        for item in error.errors()
    )


def read_gcp(path: Path) -> GcpOutputs | None:
    """The GCP half's outputs, or None when `path` does not exist."""
    if not path.is_file():
        return None
    fix = "re-run `python -m gcp_stack deploy`"
    try:
        return GcpOutputs.model_validate(_load(path, fix))
    except ValidationError as error:
        raise OutputsFileError(f"{path}: {_problems(error)}: {fix}") from None


def read_aws(path: Path) -> AwsOutputs | None:
    """`cdk deploy`'s outputs, or None when `path` does not exist."""
    if not path.is_file():
        return None
    fix = "re-run `cdk deploy --outputs-file` (make deploy) or pass another file"
    try:
        return AwsOutputs.model_validate({"stacks": _load(path, fix)})
    except ValidationError as error:
        raise OutputsFileError(f"{path}: {_problems(error)}: {fix}") from None
