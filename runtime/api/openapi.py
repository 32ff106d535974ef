"""`GET /openapi.json`: the API as OpenAPI 3.1, built from the same pydantic models it uses."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint

from runtime import jsondoc
from runtime.api.services import services
from runtime.envelope import SUBMISSION_ID_PATTERN, SubmissionIn

blueprint = Blueprint("openapi", __name__)

PROBLEM = {"$ref": "#/components/schemas/Problem"}
DT = {"type": "string", "format": "date-time"}
NULLABLE_DT = {"anyOf": [DT, {"type": "null"}]}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, ref: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}}
UNAVAILABLE = _problem("The database is unavailable.", RETRY_AFTER)


@cache
def document(max_body_bytes: int) -> dict[str, Any]:
    submission = SubmissionIn.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = submission.pop("$defs", {})
    submission["properties"]["data"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        "description": submission["properties"]["data"].get("description", "")
        + f" I-JSON (RFC 7493): at most {jsondoc.MAX_DEPTH} levels deep, integers within"
        " ±(2^53 - 1), finite numbers, strings and keys of Unicode scalar values only,"
        " unique keys.",
    }
    value = {"$ref": "#/components/schemas/JsonValue"}
    schemas: dict[str, Any] = {
        "SubmissionIn": submission,
        **defs,
        "JsonValue": {
            "anyOf": [
                {"type": "null"},
                {"type": "boolean"},
                {"type": "string"},
                {
                    "type": "number",
                    "minimum": -jsondoc.MAX_SAFE_INTEGER,
                    "maximum": jsondoc.MAX_SAFE_INTEGER,
                },
                {"type": "array", "items": value},
                {"type": "object", "additionalProperties": value},
            ]
        },
        "Accepted": {
            "type": "object",
            "required": ["id", "status", "received_at", "sha256", "object_name"],
            "properties": {
                "id": {"type": "string", "pattern": SUBMISSION_ID_PATTERN},
                "status": {"const": "accepted"},
                "received_at": DT,
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "object_name": {"type": "string"},
            },
        },
        "SubmissionStatus": {
            "type": "object",
            "required": ["id", "type", "status", "received_at", "updated_at", "attempts"],
            "properties": {
                "id": {"type": "string", "pattern": SUBMISSION_ID_PATTERN},
                "type": {"type": "string"},
                "status": {"enum": ["accepted", "forwarded", "stored", "failed"]},
                "received_at": DT,
                "updated_at": DT,
                "forwarded_at": NULLABLE_DT,
                "stored": {"type": "boolean", "description": "GCP's receipt confirmed it."},
                "stored_at": NULLABLE_DT,
                "object_uri": {"type": ["string", "null"]},
                "generation": {"type": ["integer", "null"]},
                "redeliveries": {"type": "integer", "minimum": 0},
                "attempts": {"type": "integer", "minimum": 0},
                "last_error": {"type": ["string", "null"]},
                "message_id": {"type": ["string", "null"]},
                "sha256": {"type": "string"},
                "object_name": {"type": "string"},
            },
        },
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "reason"],
                        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
            },
        },
        "Health": {"type": "object", "required": ["status"]},
        "Ready": {
            "type": "object",
            "required": ["status", "database", "outbox", "receipts"],
            "properties": {
                "status": {"const": "ready"},
                "database": {"const": "ok"},
                "outbox": {
                    "type": "object",
                    "required": ["pending", "oldest_pending_age_seconds"],
                    "properties": {
                        "pending": {"type": "integer", "minimum": 0},
                        "pending_capped": {"type": "boolean"},
                        "oldest_pending_age_seconds": {"type": "number", "minimum": 0},
                    },
                },
                "receipts": {
                    "type": "object",
                    "required": ["unconfirmed", "oldest_unconfirmed_age_seconds"],
                    "properties": {
                        "unconfirmed": {"type": "integer", "minimum": 0},
                        "unconfirmed_capped": {"type": "boolean"},
                        "oldest_unconfirmed_age_seconds": {
                            "type": "number",
                            "minimum": 0,
                            "description": "Seconds since the oldest unconfirmed submission "
                            "was first forwarded to GCP (redeliveries keep that time).",
                        },
                    },
                },
            },
        },
    }
    location = {"Location": {"schema": {"type": "string"}, "description": "Status URL."}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "skybridge API",
            "version": "1.0.0",
            "description": "Accepts submissions on AWS and forwards them to GCP.",
        },
        "paths": {
            "/v1/submissions": {
                "post": {
                    "operationId": "createSubmission",
                    "summary": "Accept a submission (202 once it is durably stored).",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "pattern": "^[!-~]([ -~]{0,253}[!-~])?$"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "description": f"At most {max_body_bytes} bytes.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/SubmissionIn"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            "Accepted and stored; delivery follows.", "Accepted", location
                        ),
                        "400": _problem("Malformed JSON or an invalid header."),
                        "409": _problem("The Idempotency-Key was used with another body."),
                        "413": _problem("The body is too large."),
                        "429": _problem("Too many submissions from this client.", RETRY_AFTER),
                        "415": _problem(
                            "The body is not JSON, or is compressed (send it uncompressed)."
                        ),
                        "422": _problem("The submission does not match the schema."),
                        "503": UNAVAILABLE,
                    },
                }
            },
            "/v1/submissions/{id}": {
                "get": {
                    "operationId": "getSubmission",
                    "summary": "A submission's delivery status.",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": _json("The submission's status.", "SubmissionStatus"),
                        "404": _problem("No such submission."),
                        "503": UNAVAILABLE,
                    },
                }
            },
            "/livez": {
                "get": {
                    "operationId": "livez",
                    "responses": {"200": _json("The process is alive.", "Health")},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "responses": {"200": _json("The process is alive (as /livez).", "Health")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "responses": {
                        "200": _json("The database answers.", "Ready"),
                        "503": UNAVAILABLE,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }


@blueprint.get("/openapi.json")
def openapi_json():
    return document(services().settings.max_body_bytes)
