"""Runtime configuration: environment variables, read once, through one settings object.

Every variable is `SKYBRIDGE_<FIELD>` (for example `SKYBRIDGE_DATABASE_URL`). Defaults suit
a local run; a value the current process needs but lacks fails at start naming the variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFIX = "SKYBRIDGE_"


class SettingsError(RuntimeError):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(BaseModel):
    """Values given as arguments win over `SKYBRIDGE_*` variables, which win over defaults.

    A plain pydantic model reading the environment itself: pydantic-settings did the same
    for these flat fields but added a third of each function's cold start (its import).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**(_from_environment() | values))

    # Database. On AWS the URL's credentials come from the Secrets Manager secret instead.
    database_url: str = "sqlite:///.local_stack/skybridge.sqlite3"
    database_secret_arn: str = ""
    database_tls_ca: str = ""  # CA bundle path; set on AWS, where RDS requires TLS
    database_pool_size: int = Field(default=8, ge=1, le=64)
    migrate_on_start: bool = False

    # API
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=1024 * 1024)  # jsondoc
    retry_after_seconds: int = Field(default=5, ge=1)
    submissions_per_minute: int = Field(default=0, ge=0)  # per client and worker; 0: off
    trusted_proxy_hops: int = Field(default=0, ge=0, le=1)  # 1 behind the ALB

    # Relay
    ingest_url: str = ""
    token_source: Literal["none", "static", "aws-wif", "gce-metadata"] = "none"  # noqa: S105
    static_token: str = ""
    gcp_credential_config: str = ""  # path to the external_account JSON (aws-wif)
    gcp_service_account: str = ""  # the service account whose ID token the relay presents
    relay_batch_size: int = Field(default=100, ge=1, le=1000)
    # Cloud Run refuses requests over 32 MiB; a batch stays well under it.
    relay_batch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=24 * 1024 * 1024)
    relay_max_attempts: int = Field(default=20, ge=1)
    relay_poll_interval: float = Field(default=0.2, gt=0)
    relay_lease_seconds: float = Field(default=60.0, gt=0)
    relay_timeout_seconds: float = Field(default=30.0, gt=0)
    relay_backoff_base: float = Field(default=0.5, gt=0)
    relay_backoff_max: float = Field(default=300.0, gt=0)
    relay_breaker_threshold: int = Field(default=5, ge=1)
    relay_breaker_cooldown: float = Field(default=10.0, gt=0)
    relay_gauge_interval: float = Field(default=10.0, gt=0)  # outbox backlog metrics

    # Receipts (relay): the pull subscription on GCP's receipts topic, and reconciliation —
    # a forwarded submission without a receipt after the window (doubling with each
    # redelivery) is forwarded again, and failed after `confirm_max_redeliveries`.
    receipts_subscription: str = ""  # projects/<p>/subscriptions/<s>; empty: no receipts
    receipts_batch_size: int = Field(default=100, ge=1, le=1000)
    receipts_pull_timeout: float = Field(default=10.0, gt=0)
    confirm_window_seconds: float = Field(default=3600.0, gt=0)
    confirm_max_redeliveries: int = Field(default=5, ge=0)
    reconcile: bool = True
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)

    # Retention (relay, and `python -m runtime.db purge`): `stored` submissions are purged
    # this many days after GCP stored them (the bucket's objects live as long), `failed` ones
    # this long after they failed; 0 keeps them. On AWS from environments/<name>.toml.
    retention_stored_days: int = Field(default=0, ge=0)
    retention_failed_days: int = Field(default=0, ge=0)
    purge_interval_seconds: float = Field(default=300.0, gt=0)
    purge_batch_size: int = Field(default=500, ge=1, le=10_000)
    purge_max_batches: int = Field(default=4, ge=1)  # per status and round of the relay loop

    # Functions
    topic: str = ""  # projects/<p>/topics/<t>
    bucket: str = ""
    receipts_topic: str = ""  # store publishes a receipt here for every stored object
    source: str = "aws"

    # Observability
    metrics: Literal["emf", "log", "none"] = "log"
    metrics_namespace: str = "Skybridge"
    log_level: str = "INFO"

    def require(self, *fields: str) -> None:
        missing = [f"SKYBRIDGE_{name.upper()}" for name in fields if not getattr(self, name)]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")


def _from_environment() -> dict[str, str]:
    return {
        name[len(PREFIX) :].lower(): value
        for name, value in os.environ.items()
        if name.upper().startswith(PREFIX)
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"SKYBRIDGE_{str(item['loc'][0]).upper()}: {item['msg']}" for item in error.errors()
        )
        raise SettingsError(f"invalid setting(s): {problems}") from None
