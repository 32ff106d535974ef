"""Google's error shape: `{"error": {"code", "message", "status", "details"?}}`.

https://cloud.google.com/apis/design/errors#http_mapping — `status` is the canonical code's
name; `details` carries typed payloads such as `google.rpc.ErrorInfo` (whose `reason` is
what clients, Terraform's retry predicates included, match on).
"""

from __future__ import annotations

from typing import Any

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


class GoogleError(Exception):
    """Raised by any rule to answer the request with Google's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str = "UNAVAILABLE",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.details = status, message, reason, details

    def answer(self) -> tuple[int, dict[str, Any]]:
        return error(self.status, self.message, self.reason, self.details)


def error(
    status: int,
    message: str,
    reason: str = "UNAVAILABLE",
    details: list[dict[str, Any]] | None = None,
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"code": status, "message": message, "status": reason}
    if details:
        body["details"] = details
    return status, {"error": body}


def error_info(reason: str, domain: str = "googleapis.com", **metadata: str) -> dict[str, Any]:
    return {"@type": ERROR_INFO, "reason": reason, "domain": domain, "metadata": metadata}
