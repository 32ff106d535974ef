"""The wire format between the parts, defined once.

* `SubmissionIn`     — what a client POSTs to the API.
* `ForwardedSubmission` / `ForwardBatch` — what the relay POSTs to the `ingest` function.
* `IngestResult` / `IngestResponse` — what `ingest` answers, per item.
* `StoredAsset`      — the object `store` writes to Cloud Storage.
* `Receipt`          — what `store` publishes to the receipts topic once the object exists,
                       and the relay checks against what AWS accepted.

`python -m runtime.envelope schemas/` writes them as JSON Schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from runtime import jsondoc

SCHEMA_VERSION: Final = "1"
SUBMISSION_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"  # a ULID: time-ordered, Crockford base32
SUBMISSION_ID_RE = re.compile(SUBMISSION_ID_PATTERN)
TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmissionIn(_Strict):
    """A user submission, as accepted by `POST /v1/submissions`."""

    schema_version: Literal["1"] = Field(default=SCHEMA_VERSION, description="Envelope version.")
    type: str = Field(pattern=TYPE_PATTERN, description="What kind of submission this is.")
    data: dict[str, JsonValue] = Field(description="The submission itself: any JSON object.")

    def canonical_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))


class ForwardedSubmission(_Strict):
    """One accepted submission on its way from AWS to GCP."""

    submission_id: str = Field(pattern=SUBMISSION_ID_PATTERN)
    schema_version: Literal["1"] = SCHEMA_VERSION
    type: str = Field(pattern=TYPE_PATTERN)
    data: dict[str, JsonValue]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the canonical JSON.")
    received_at: datetime = Field(description="When the AWS API accepted it (UTC).")
    source: str = Field(default="aws", max_length=64)

    def submission(self) -> SubmissionIn:
        return SubmissionIn(schema_version=self.schema_version, type=self.type, data=self.data)

    def checksum_ok(self) -> bool:
        return sha256_hex(self.submission().canonical_json()) == self.sha256

    @property
    def object_name(self) -> str:
        return object_name(self.submission_id, self.received_at)


class ForwardBatch(_Strict):
    """The body the relay POSTs to `ingest`: the items are validated one by one there."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    items: list[Any] = Field(min_length=1, max_length=1000)


class IngestResult(_Strict):
    submission_id: str | None
    status: Literal["published", "rejected", "failed"]  # failed: transient, retry it
    message_id: str | None = None
    error: str | None = None


class IngestResponse(_Strict):
    results: list[IngestResult]


class Provenance(_Strict):
    aws_received_at: datetime
    pubsub_message_id: str
    pubsub_publish_time: datetime | None
    stored_at: datetime


class StoredAsset(_Strict):
    """The processed submission as stored in Cloud Storage."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    submission_id: str
    type: str
    data: dict[str, JsonValue]
    sha256: str
    checksum_verified: bool
    provenance: Provenance


class Receipt(_Strict):
    """GCP's word that a submission is stored: published by `store` after it wrote the
    object (or found it already there), consumed by the relay on AWS."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    submission_id: str = Field(pattern=SUBMISSION_ID_PATTERN)
    bucket: str = Field(min_length=3, max_length=222)
    object_name: str = Field(min_length=1, max_length=1024)
    generation: int = Field(ge=1, description="The object's Cloud Storage generation.")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the canonical JSON of the submission as read from the object.",
    )
    stored_at: datetime = Field(description="When the object was written (UTC).")

    @property
    def object_uri(self) -> str:
        return f"gs://{self.bucket}/{self.object_name}"


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, UTF-8 (the hashed form)."""
    return jsondoc.dumps(value, sort_keys=True)


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def wire_time(value: datetime) -> str:
    """A UTC time as the wire format writes it: ISO 8601 with `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def object_name(submission_id: str, received_at: datetime | date) -> str:
    """Where a submission is stored in the bucket: by the day AWS received it."""
    day = received_at.astimezone(UTC) if isinstance(received_at, datetime) else received_at
    return f"submissions/{day:%Y/%m/%d}/{submission_id}.json"


SCHEMAS: dict[str, type[BaseModel]] = {
    "submission": SubmissionIn,
    "forwarded-submission": ForwardedSubmission,
    "forward-batch": ForwardBatch,
    "ingest-response": IngestResponse,
    "stored-asset": StoredAsset,
    "receipt": Receipt,
}


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = directory / f"{name}.v{SCHEMA_VERSION}.json"
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
        schema |= model.model_json_schema()
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(written_path)
