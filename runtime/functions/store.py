"""`store`: one Pub/Sub message in, one processed object in Cloud Storage out.

The object name is the submission id, written with `ifGenerationMatch=0`, so storage holds
each submission exactly once however often Pub/Sub delivers it: a 412 means already stored
and counts as success. A message that can never be stored (undecodable, wrong schema,
checksum mismatch) is logged as an error and acknowledged rather than retried forever;
a transient storage error raises, so Pub/Sub redelivers and, in the end, dead-letters.
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
from runtime.envelope import ForwardedSubmission, Provenance, StoredAsset, object_name
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


def write(asset: StoredAsset, name: str) -> bool:
    """Create the object once. Returns False when it already existed (a redelivery)."""
    from google.api_core.exceptions import PreconditionFailed

    blob = bucket().blob(name)
    try:
        blob.upload_from_string(
            asset.model_dump_json(indent=2), content_type="application/json", if_generation_match=0
        )
    except PreconditionFailed:
        return False
    return True


@functions_framework.cloud_event
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
    created = write(asset, name)
    log.info(
        "submission stored" if created else "submission already stored",
        extra={
            "event": "submission.stored" if created else "submission.duplicate",
            "submission_id": asset.submission_id,
            "object": name,
            "delivery_attempt": attempt,
        },
    )
