"""`store`: one Pub/Sub message in, one processed object in Cloud Storage out.

The object name is the submission id, written with `ifGenerationMatch=0`, so storage holds
each submission exactly once however often Pub/Sub delivers it: a 412 means already stored
and counts as success. A message that can never be stored (undecodable, wrong schema,
checksum mismatch) is logged as an error and acknowledged rather than retried forever;
a transient storage error raises, so Pub/Sub redelivers and, in the end, dead-letters.

Once the object exists (written now, or found already there), `store` publishes a
`Receipt` to the receipts topic: the object's generation and the sha256 of the submission
as read back from the object, so AWS can check that what is stored is what it accepted.
A failed publish raises too: the redelivery finds the object and publishes again.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from datetime import UTC, datetime
from typing import Any

import functions_framework
from pydantic import ValidationError

from runtime import jsondoc
from runtime.envelope import (
    ForwardedSubmission,
    Provenance,
    Receipt,
    StoredAsset,
    SubmissionIn,
    object_name,
    sha256_hex,
)
from runtime.functions import settings_errors_are_503
from runtime.observability import Metrics, configure_logging
from runtime.settings import get_settings

log = logging.getLogger("skybridge.store")


@functools.cache
def bucket() -> Any:
    """The Cloud Storage bucket handle, created on first use."""
    from google.cloud import storage

    settings = get_settings()
    settings.require("bucket")
    client = storage.Client()
    # requests looks proxies up in the environment on every call, which cost more CPU than
    # the rest of a write; the function runs with no proxy.
    client._http.trust_env = False
    return client.bucket(settings.bucket)


@functools.cache
def _metrics() -> Metrics:
    settings = get_settings()
    return Metrics(settings.metrics, settings.metrics_namespace, "store")


@functools.cache
def receipts_publisher() -> Any:
    """The Pub/Sub publisher for receipts, imported and created on first use (cold start)."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


class Undeliverable(ValueError):
    """The message can never become an object; retrying will not change that."""


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def build_asset(message: Any, now: datetime | None = None) -> StoredAsset:
    """The processed asset for a Pub/Sub message (pure: no I/O). Anything that is not a
    forwarded submission within the JSON policy (`runtime.jsondoc`) is Undeliverable."""
    if not isinstance(message, dict):
        raise Undeliverable("the push body has no message object")
    try:
        payload = base64.b64decode(message.get("data") or "", validate=True)
        item = ForwardedSubmission.model_validate(jsondoc.load(payload))
        intact = item.checksum_ok()
    except (binascii.Error, ValidationError, TypeError, ValueError) as error:
        # ValueError covers jsondoc's refusals and non-UTF-8 data.
        raise Undeliverable(f"not a forwarded submission: {str(error)[:300]}") from None
    if not intact:
        raise Undeliverable("sha256 does not match the submission")
    message_id = message.get("messageId") or message.get("message_id") or ""
    publish_time = message.get("publishTime") or message.get("publish_time")
    return StoredAsset(
        submission_id=item.submission_id,
        type=item.type,
        data=item.data,
        sha256=item.sha256,
        checksum_verified=True,
        provenance=Provenance(
            aws_received_at=item.received_at,
            pubsub_message_id=str(message_id),
            pubsub_publish_time=_parse_time(publish_time),
            stored_at=now or datetime.now(UTC),
        ),
    )


def content_sha256(raw: bytes) -> str:
    """The sha256 AWS compares: of the submission's canonical JSON as the object holds it
    (of the raw bytes when the object is not a stored asset at all, so it cannot match)."""
    try:
        stored = StoredAsset.model_validate_json(raw)
    except ValidationError:
        return sha256_hex(raw)
    return _asset_sha256(stored)


def _asset_sha256(asset: StoredAsset) -> str:
    submission = SubmissionIn(schema_version=asset.schema_version, type=asset.type, data=asset.data)
    return sha256_hex(submission.canonical_json())


def write(asset: StoredAsset, name: str) -> tuple[bool, Receipt]:
    """Create the object once; the receipt for what the bucket holds under `name` either
    way. `created` is False when it already existed (a redelivery)."""
    from google.api_core.exceptions import PreconditionFailed

    blob = bucket().blob(name)
    try:
        blob.upload_from_string(
            asset.model_dump_json(indent=2), content_type="application/json", if_generation_match=0
        )
    except PreconditionFailed:
        existing = bucket().get_blob(name)
        if existing is None:  # deleted since the 412: fail, so the redelivery writes it
            raise RuntimeError(f"{name} vanished between the write and the read") from None
        raw = existing.download_as_bytes(if_generation_match=existing.generation)
        try:
            stored_at = StoredAsset.model_validate_json(raw).provenance.stored_at
        except ValidationError:
            stored_at = existing.time_created or datetime.now(UTC)
        return False, Receipt(
            submission_id=asset.submission_id,
            bucket=bucket().name,
            object_name=name,
            generation=int(existing.generation),
            sha256=content_sha256(raw),
            stored_at=stored_at,
        )
    return True, Receipt(
        submission_id=asset.submission_id,
        bucket=bucket().name,
        object_name=name,
        generation=int(blob.generation),
        sha256=_asset_sha256(asset),
        stored_at=asset.provenance.stored_at,
    )


def publish_receipt(receipt: Receipt, timeout: float = 30.0) -> None:
    topic = get_settings().receipts_topic
    if not topic:
        return  # receipts not configured: nothing on AWS waits for them
    future = receipts_publisher().publish(
        topic, receipt.model_dump_json().encode(), submission_id=receipt.submission_id
    )
    future.result(timeout=timeout)


@functions_framework.cloud_event
@settings_errors_are_503
def store(cloud_event: Any) -> None:
    configure_logging(get_settings().log_level)
    envelope = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    message = envelope.get("message")
    message = message if isinstance(message, dict) else {}
    attempt = envelope.get("deliveryAttempt") or message.get("deliveryAttempt")
    try:
        asset = build_asset(message)
    except Undeliverable as error:
        # Acknowledged (the function returns normally): garbage is logged and counted, not
        # redelivered until it dead-letters. Counted by the `submission.undecodable` event
        # (a log-based metric) and the Undecodable metric.
        attributes = message.get("attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        log.error(
            "message dropped: %s",
            error,
            extra={
                "event": "submission.undecodable",
                "message_id": str(message.get("messageId", ""))[:128],
                "submission_id": str(attributes.get("submission_id", ""))[:64],
            },
        )
        _metrics().emit({"Undecodable": (1, "Count")})
        return
    name = object_name(asset.submission_id, asset.provenance.aws_received_at)
    created, receipt = write(asset, name)
    publish_receipt(receipt)
    log.info(
        "submission stored" if created else "submission already stored",
        extra={
            "event": "submission.stored" if created else "submission.duplicate",
            "submission_id": asset.submission_id,
            "object": name,
            "generation": receipt.generation,
            "receipt_published": bool(get_settings().receipts_topic),
            "delivery_attempt": attempt,
        },
    )
