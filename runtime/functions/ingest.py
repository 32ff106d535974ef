"""`ingest`: the relay's batch in, one Pub/Sub message per submission out.

Each item is judged on its own, by the same JSON policy as the API (`runtime.jsondoc`) and
the wire format: a bad item is rejected in the answer and never sinks the batch; only a
body that is not JSON at all, or not a batch, is answered 400 (the relay then splits the
batch until the culprit is alone). The answer lists every item with its message id
(published), its reason (rejected, permanent) or `failed` (transient: the relay retries
it). A submission id seen twice is harmless: downstream, the object name is the id and a
second write is a no-op.
"""

from __future__ import annotations

import functools
import json
import logging
from concurrent import futures
from typing import Any

import functions_framework
from flask import Request, Response
from pydantic import ValidationError

from runtime import jsondoc
from runtime.envelope import ForwardBatch, ForwardedSubmission, IngestResult, sha256_hex
from runtime.functions import problem, settings_errors_are_503
from runtime.observability import configure_logging
from runtime.settings import get_settings

log = logging.getLogger("skybridge.ingest")
PUBLISH_TIMEOUT = 30.0


@functools.cache
def publisher() -> Any:
    """The Pub/Sub publisher, created on first use (importing it costs ~300 ms)."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.005)
    )


def validate_items(items: list[Any]) -> list[ForwardedSubmission | IngestResult]:
    """Each item as a ForwardedSubmission, or as the rejection saying why it is not one."""
    checked: list[ForwardedSubmission | IngestResult] = []
    for raw in items:
        sid = raw.get("submission_id") if isinstance(raw, dict) else None
        sid = sid if isinstance(sid, str) and len(sid) <= 64 else None
        try:
            # An item is a submission with envelope fields: `data` sits at depth 1, as in
            # the body the API accepted.
            jsondoc.check(raw)
            item = ForwardedSubmission.model_validate(raw)
            canonical = item.submission().canonical_json()
            if len(canonical) > jsondoc.MAX_DOCUMENT_BYTES:
                raise jsondoc.JsonRejected(("data",), "larger than any submission the API takes")
        except jsondoc.JsonRejected as error:
            checked.append(IngestResult(submission_id=sid, status="rejected", error=str(error)))
            continue
        except ValidationError as error:
            first = error.errors(include_url=False, include_input=False)[0]
            where = "/".join(str(part) for part in first["loc"])
            checked.append(
                IngestResult(submission_id=sid, status="rejected", error=f"{where}: {first['msg']}")
            )
            continue
        if sha256_hex(canonical) != item.sha256:
            reason = "sha256 does not match the submission"
            checked.append(IngestResult(submission_id=sid, status="rejected", error=reason))
            continue
        checked.append(item)
    return checked


@functions_framework.http
@settings_errors_are_503
def ingest(request: Request) -> Response:
    settings = get_settings()
    configure_logging(settings.log_level)
    if request.method != "POST":
        return problem(405, "Method Not Allowed", "POST a batch of submissions")
    if request.mimetype != "application/json":
        return problem(415, "Unsupported Media Type", "Content-Type must be application/json")
    try:
        batch = ForwardBatch.model_validate(jsondoc.parse(request.get_data()))
    except jsondoc.JsonSyntaxError as error:
        return problem(400, "Bad Request", str(error))
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = "/".join(str(part) for part in first["loc"]) or "body"
        return problem(400, "Bad Request", f"{where}: {first['msg']}")

    settings.require("topic")
    checked = validate_items(batch.items)
    pending: dict[int, futures.Future] = {}
    for index, item in enumerate(checked):
        if isinstance(item, ForwardedSubmission):
            pending[index] = publisher().publish(
                settings.topic,
                jsondoc.dumps(item.model_dump(mode="json")),
                submission_id=item.submission_id,
                schema_version=item.schema_version,
                source=item.source,
            )
    results: list[dict[str, Any]] = []
    for index, item in enumerate(checked):
        if isinstance(item, IngestResult):
            log.warning(
                "submission rejected: %s",
                item.error,
                extra={"event": "submission.rejected", "submission_id": item.submission_id},
            )
            results.append(item.model_dump())
            continue
        try:
            message_id = pending[index].result(timeout=PUBLISH_TIMEOUT)
        except Exception as error:  # noqa: BLE001 — reported per item; the relay retries it
            log.error(
                "publish failed: %s",
                error,
                extra={"event": "submission.publish_failed", "submission_id": item.submission_id},
            )
            results.append(
                IngestResult(
                    submission_id=item.submission_id, status="failed", error=type(error).__name__
                ).model_dump()
            )
            continue
        log.info(
            "submission published",
            extra={
                "event": "submission.published",
                "submission_id": item.submission_id,
                "message_id": message_id,
            },
        )
        results.append(
            {"submission_id": item.submission_id, "status": "published", "message_id": message_id}
        )
    return Response(json.dumps({"results": results}), status=200, mimetype="application/json")
