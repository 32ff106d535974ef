"""RFC 9457 problem details: every error the API returns is one of these."""

from __future__ import annotations

from typing import Any

from flask import Response, json

from runtime.db.migrations import MIGRATE_HINT

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "https://skybridge.example/problems/"


class Problem(Exception):
    """An error the client can act on: raised anywhere, rendered by the app's handler."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def response(self, instance: str | None = None) -> Response:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body |= self.extra
        response = Response(json.dumps(body), status=self.status, mimetype=PROBLEM_TYPE)
        response.headers.update(self.headers)
        return response


def not_migrated_problem(retry_after: int) -> Problem:
    """The database lacks a migration this code needs: the operator, not time, fixes it."""
    return Problem(
        503,
        "database-not-migrated",
        "Service Unavailable",
        f"the database schema is older than this API: {MIGRATE_HINT}",
        headers={"Retry-After": str(retry_after)},
    )


def field_name(location: tuple[Any, ...]) -> str:
    """A pydantic error location as a JSON pointer-ish path: data.items.0 → /data/items/0."""
    return "/" + "/".join(str(part) for part in location) if location else "/"
