"""`/v1/submissions`: accept a submission (202 after commit) and report its status."""

from __future__ import annotations

import json
import logging
import math

from flask import Blueprint, Response, request
from pydantic import ValidationError

from runtime import jsondoc, submissions
from runtime.api.limits import client_address
from runtime.api.problems import Problem, field_name
from runtime.api.services import services
from runtime.envelope import SUBMISSION_ID_RE, SubmissionIn
from runtime.observability import submission_id

blueprint = Blueprint("submissions", __name__, url_prefix="/v1/submissions")
log = logging.getLogger("skybridge.api")

IDEMPOTENCY_KEY_MAX = 255


def parse_json_body() -> object:
    """The request body as JSON held to the policy (`runtime.jsondoc`), or a problem saying
    exactly what is wrong with it: 400 when it is not JSON, 422 naming the field when it is
    JSON outside the policy."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            f"Content-Type must be application/json, not {mimetype or 'missing'}",
        )
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        # RFC 9110 §15.5.16: a content coding the server does not apply is a 415, and
        # Accept-Encoding in the response says what it takes. Read as it is, a compressed
        # body would be refused as "not UTF-8", which sends the client looking elsewhere.
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            f"Content-Encoding {encoding[:40]} is not supported: send the body uncompressed",
            headers={"Accept-Encoding": "identity"},
        )
    raw = request.get_data(cache=False)  # 413 from MAX_CONTENT_LENGTH happens here
    try:
        return jsondoc.load(raw)
    except jsondoc.JsonSyntaxError as error:
        raise Problem(400, "malformed-json", "Malformed JSON", str(error)) from None
    except jsondoc.JsonRejected as error:
        field = field_name(error.location)
        raise Problem(
            422,
            "validation-failed",
            "Validation Failed",
            f"{field}: {error.reason}",
            errors=[{"field": field, "reason": error.reason}],
        ) from None


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise Problem(
            400,
            "invalid-header",
            "Invalid Idempotency-Key",
            f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters",
            errors=[{"field": "header:Idempotency-Key", "reason": "invalid value"}],
        )
    return key


def _within_limit() -> None:
    shared = services()
    if shared.limiter is None:
        return
    client = client_address(request, shared.settings.trusted_proxy_hops)
    wait = shared.limiter.take(client)
    if wait:
        raise Problem(
            429,
            "too-many-requests",
            "Too Many Requests",
            f"more than {shared.settings.submissions_per_minute} submissions a minute from "
            "this client; retry after the indicated delay",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


@blueprint.post("")
def create_submission():
    _within_limit()
    key = _idempotency_key()
    payload = parse_json_body()
    try:
        submission = SubmissionIn.model_validate(payload)
    except ValidationError as error:
        errors = [
            {"field": field_name(item["loc"]), "reason": item["msg"]}
            for item in error.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        raise Problem(
            422,
            "validation-failed",
            "Validation Failed",
            f"{first['field']}: {first['reason']}",
            errors=errors,
        ) from None

    shared = services()
    try:
        result = submissions.accept(
            shared.engine, submission, key, max_bytes=shared.settings.max_body_bytes
        )
    except submissions.IdempotencyConflict as conflict:
        raise Problem(
            409,
            "idempotency-conflict",
            "Idempotency-Key Reused",
            f"Idempotency-Key {conflict.key!r} was already used with a different body",
            errors=[{"field": "header:Idempotency-Key", "reason": "reused with another body"}],
        ) from None
    except submissions.TooLarge as error:
        raise Problem(
            413,
            "too-large",
            "Payload Too Large",
            str(error),
            errors=[{"field": "/data", "reason": "too large"}],
        ) from None

    row = result.row
    submission_id.set(row["id"])
    if not result.replayed:
        shared.metrics.emit({"Accepted": (1, "Count")}, submission_id=row["id"])
        log.info("submission accepted", extra={"event": "submission.accepted", "type": row["type"]})
    response = Response(
        json.dumps(submissions.accepted_view(row)), status=202, mimetype="application/json"
    )
    # What url_for("submissions.get_submission") builds, without a URL map lookup per request.
    response.headers["Location"] = f"{request.script_root}{blueprint.url_prefix}/{row['id']}"
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blueprint.get("/<sid>")
def get_submission(sid: str):
    if not SUBMISSION_ID_RE.match(sid):
        raise Problem(
            404, "not-found", "Not Found", f"no submission {sid!r}: ids are 26-character ULIDs"
        )
    with services().engine.begin() as connection:
        row = submissions.get(connection, sid)
    if row is None:
        raise Problem(404, "not-found", "Not Found", f"no submission {sid!r}")
    return submissions.status_view(row)
