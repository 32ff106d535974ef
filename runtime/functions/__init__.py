"""The two Cloud Functions: `ingest` (HTTP → Pub/Sub) and `store` (Pub/Sub → Cloud Storage).

Each module is a thin functions-framework handler over pure logic; clients are created
lazily, once per instance, so a cold start pays only for what the first request uses.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response
from werkzeug.exceptions import ServiceUnavailable

from runtime.observability import configure_logging
from runtime.settings import SettingsError

Handler = TypeVar("Handler", bound=Callable[..., Any])


def problem(status: int, title: str, detail: str) -> Response:
    """An RFC 9457 problem response, as both functions answer errors."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


class Misconfigured(ServiceUnavailable):
    """503: the function's own settings are wrong. The caller is not at fault and loses
    nothing: the relay keeps the batch and retries, Pub/Sub redelivers the message."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, response=problem(503, "Service Unavailable", detail))


def settings_errors_are_503(handler: Handler) -> Handler:
    """A missing or invalid `SKYBRIDGE_*` setting is one log line naming the variable
    (event `function.misconfigured`) and a 503, not a traceback and a 500."""

    @functools.wraps(handler)
    def wrapper(*args: Any) -> Any:
        try:
            return handler(*args)
        except SettingsError as error:
            configure_logging()
            logging.getLogger(f"skybridge.{handler.__name__}").error(
                "function misconfigured: %s",
                error,
                extra={"event": "function.misconfigured"},
            )
            raise Misconfigured(
                f"the {handler.__name__} function is misconfigured; its log names the setting"
            ) from None

    return wrapper  # type: ignore[return-value]
