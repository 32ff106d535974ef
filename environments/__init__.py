"""One environment file per deployment, read by both stacks' entry points.

`load("dev")` reads `environments/dev.toml` and validates it; an error names the key and
says how to fix it. Constructs and resource builders never read this: they take the typed
values the entry points hand them.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DIRECTORY = Path(__file__).resolve().parent
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,15}$")


class EnvironmentFileError(ValueError):
    """An environment file is missing or invalid; the message says which key and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsSettings(_Section):
    account: Annotated[str, Field(pattern=r"^\d{12}$")]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    nat_gateways: Annotated[int, Field(le=2)] = 1
    instance_type: str = "t4g.small"
    min_capacity: Annotated[int, Field(ge=1)] = 2
    max_capacity: Annotated[int, Field(ge=1)] = 4
    db_instance_class: str = "db.t4g.micro"
    db_multi_az: bool = False
    db_allocated_storage_gib: Annotated[int, Field(ge=20, le=1000)] = 20
    db_backup_retention_days: Annotated[int, Field(ge=1, le=35)] = 7
    # Empty: the newest MySQL 8.4 minor aws-cdk-lib knows (minor upgrades are automatic).
    db_engine_version: Annotated[str, Field(pattern=r"^$|^8\.4\.\d+$")] = ""
    certificate_arn: str = ""
    relay_role_name: Annotated[str, Field(pattern=r"^[\w+=,.@-]{1,64}$")]

    @field_validator("nat_gateways")
    @classmethod
    def _egress(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                "must be 1 or 2: the relay calls Google (STS, IAM Credentials, the ingest "
                "function) from the private subnets, through a NAT gateway; AWS APIs go "
                "through VPC endpoints either way"
            )
        return value

    @field_validator("instance_type")
    @classmethod
    def _graviton(cls, value: str) -> str:
        family = value.split(".")[0]
        if not family.endswith("g") and "g" not in family[1:]:
            raise ValueError("must be a Graviton (arm64) type such as t4g.small or m7g.large")
        return value


# Where Cloud Functions (2nd gen) runs: https://cloud.google.com/functions/docs/locations
GCP_REGIONS = frozenset({
    "africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2",
    "asia-northeast3", "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2",
    "australia-southeast1", "australia-southeast2", "europe-central2", "europe-north1",
    "europe-north2", "europe-southwest1", "europe-west1", "europe-west2", "europe-west3",
    "europe-west4", "europe-west6", "europe-west8", "europe-west9", "europe-west10",
    "europe-west12", "me-central1", "me-central2", "me-west1", "northamerica-northeast1",
    "northamerica-northeast2", "northamerica-south1", "southamerica-east1",
    "southamerica-west1", "us-central1", "us-east1", "us-east4", "us-east5", "us-south1",
    "us-west1", "us-west2", "us-west3", "us-west4",
})  # fmt: skip


class GcpSettings(_Section):
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    region: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+\d+$")]
    function_runtime: Literal["python312", "python313"] = "python312"
    max_delivery_attempts: Annotated[int, Field(ge=5, le=100)] = 5

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in GCP_REGIONS:
            closest = difflib.get_close_matches(value, sorted(GCP_REGIONS), n=1, cutoff=0)
            raise ValueError(
                f"{value!r} is not a Cloud Functions region (did you mean {closest[0]!r}? "
                "see https://cloud.google.com/functions/docs/locations)"
            )
        return value


# The retry policy on the store trigger's subscription (gcp_stack.resources.
# trigger_dead_letter; a test keeps the two in step): exponential backoff between these.
PUSH_MIN_BACKOFF_SECONDS = 10
PUSH_MAX_BACKOFF_SECONDS = 600


def push_retry_budget_seconds(max_delivery_attempts: int) -> int:
    """How long Pub/Sub keeps redelivering a message `store` fails before it dead-letters
    it: the backoff doubles from the minimum up to the maximum between attempts (dev, 5
    attempts: 150 s; prod, 10 attempts: 2,430 s)."""
    return sum(
        min(PUSH_MAX_BACKOFF_SECONDS, PUSH_MIN_BACKOFF_SECONDS * 2**attempt)
        for attempt in range(max_delivery_attempts - 1)
    )


class ReceiptSettings(_Section):
    # How long the AWS side waits for GCP's receipt before forwarding a submission again
    # (doubling with each redelivery); 0: twice the push retry budget, at least 5 minutes.
    confirm_window_seconds: Annotated[int, Field(ge=0)] = 0
    max_redeliveries: Annotated[int, Field(ge=0, le=50)] = 5


class LimitSettings(_Section):
    """Abuse limits. The WAF's (aws_stack/waf.py): its rate-based rules count over 5 minutes
    and take at least 10 (https://docs.aws.amazon.com/waf/latest/APIReference/API_RateBasedStatement.html).
    The app's own (runtime/api/limits.py): submissions per client address and minute, in
    each API worker process (0: off)."""

    requests_per_ip_per_5_minutes: Annotated[int, Field(ge=10, le=2_000_000_000)] = 3000
    submissions_per_ip_per_minute: Annotated[int, Field(ge=0, le=1_000_000)] = 600


class RetentionSettings(_Section):
    """How long both clouds keep a submission. `stored_days`: the bucket's lifecycle deletes
    an object this long after it was written, and the AWS side purges the row of a `stored`
    submission at the same age (runtime/retention.py). `failed_days`: a `failed` row is
    kept this long after it failed, for `relay replay`. Pending and unconfirmed rows are
    never purged."""

    stored_days: Annotated[int, Field(ge=1, le=36_500)] = 365
    failed_days: Annotated[int, Field(ge=1, le=36_500)] = 90


class AlertSettings(_Section):
    email: Annotated[str, Field(pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")] = ""


class Environment(_Section):
    name: str
    production: bool = False
    aws: AwsSettings
    gcp: GcpSettings
    alerts: AlertSettings = AlertSettings()
    receipts: ReceiptSettings = ReceiptSettings()
    limits: LimitSettings = LimitSettings()
    retention: RetentionSettings = RetentionSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must be 2-16 lowercase letters, digits or dashes, starting a letter")
        return value

    @property
    def prefix(self) -> str:
        return f"skybridge-{self.name}"

    @property
    def confirm_window_seconds(self) -> int:
        """The reconciliation window: longer than Pub/Sub's push retry budget, so what is
        still being retried inside GCP is not forwarded a second time."""
        budget = push_retry_budget_seconds(self.gcp.max_delivery_attempts)
        return self.receipts.confirm_window_seconds or max(300, 2 * budget)


def available() -> list[str]:
    return sorted(path.stem for path in DIRECTORY.glob("*.toml"))


def load(name: str, directory: Path = DIRECTORY) -> Environment:
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise EnvironmentFileError(
            f"no environment file {path} — choose one of {', '.join(available()) or 'none'} "
            f"or create environments/{name}.toml (see environments/dev.toml)"
        )
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise EnvironmentFileError(f"{path}: not valid TOML: {error}") from None
    if "object_retention_days" in raw.get("gcp", {}):
        raise EnvironmentFileError(
            f"{path}: gcp.object_retention_days is now [retention] stored_days (both clouds "
            f"keep a stored submission that long) — move the key in {path.name}"
        )
    try:
        environment = Environment.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise EnvironmentFileError(f"{path}: {problems} — edit that key in {path.name}") from None
    if environment.name != name:
        raise EnvironmentFileError(f"{path}: name = {environment.name!r} must match the file name")
    if environment.aws.min_capacity > environment.aws.max_capacity:
        raise EnvironmentFileError(f"{path}: aws.min_capacity must not exceed aws.max_capacity")
    budget = push_retry_budget_seconds(environment.gcp.max_delivery_attempts)
    if 0 < environment.receipts.confirm_window_seconds <= budget:
        raise EnvironmentFileError(
            f"{path}: receipts.confirm_window_seconds must exceed the push retry budget of "
            f"gcp.max_delivery_attempts = {environment.gcp.max_delivery_attempts} ({budget} s); "
            f"raise it or set 0 for twice the budget"
        )
    return environment
