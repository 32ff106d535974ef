"""Logs and metrics, the same on both clouds.

Every log line is one JSON object with `severity` (Cloud Logging reads it as the level), a
`message`, an `event` name that log-based metrics can count, and the request / submission
id of whatever the line is about (from context variables, so callees need not pass them).
On AWS, metrics are CloudWatch Embedded Metric Format lines on stdout: the CloudWatch agent
ships them and CloudWatch turns them into metrics with no API calls from the hot path.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
submission_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "submission_id", default=None
)

_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "DEBUG": "DEBUG"}
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "severity": _SEVERITY.get(record.levelname, "INFO"),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "submission_id"):
            value = getattr(record, key, None) or globals()[key].get()
            if value:
                line[key] = value
        line |= {k: v for k, v in vars(record).items() if k not in _RESERVED and k not in line}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # ensure_ascii: a lone surrogate or a control character from a client becomes an
        # escape, so every line is one valid JSON object whatever was logged.
        return json.dumps(line, default=str)


def lean_log_records() -> None:
    """Stop gathering, for every record, what our JSON lines never show (JsonFormatter
    writes none of these): the caller's frame (a stack walk per call), thread, process
    and multiprocessing names. The logging HOWTO's
    "Optimization" section names these switches. The API logs a line per request."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, gunicorn's, werkzeug's) through one JSON handler on stderr."""
    lean_log_records()
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


Unit = Literal["Count", "Milliseconds", "Seconds", "None"]


class Metrics:
    """Emit metrics as EMF (`emf`), as plain log lines (`log`), or not at all (`none`)."""

    def __init__(self, mode: str, namespace: str, service: str) -> None:
        self.mode = mode
        self.namespace = namespace
        self.service = service
        self._log = logging.getLogger(f"skybridge.metrics.{service}")

    def emit(
        self, values: Mapping[str, tuple[float | list[float], Unit]], **properties: Any
    ) -> None:
        """One document for `values`; a list is several samples of one metric (EMF arrays)."""
        if self.mode == "none" or not values:
            return
        if self.mode == "emf":
            document: dict[str, Any] = {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self.namespace,
                            "Dimensions": [["Service"]],
                            "Metrics": [
                                {"Name": name, "Unit": unit} for name, (_, unit) in values.items()
                            ],
                        }
                    ],
                },
                "Service": self.service,
            }
            document |= {name: value for name, (value, _) in values.items()}
            document |= properties
            sys.stdout.write(json.dumps(document, default=str) + "\n")
            sys.stdout.flush()
        else:
            fields = {name: value for name, (value, _) in values.items()}
            self._log.info("metrics", extra={"event": "metrics", "metrics": fields, **properties})
