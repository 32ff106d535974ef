"""`python -m local_stack.function_host --target … --source … --port …`: one function served
by functions-framework exactly as `python -m functions_framework` serves it, plus the request
log Cloud Run writes in front of every gen2 function.

Cloud Run logs each request it serves (log `run.googleapis.com/requests`, with `httpRequest`
status and latency) and counts it as run.googleapis.com/request_count (labels
response_code, response_code_class) and request_latencies
(https://cloud.google.com/run/docs/logging#request-logs,
https://cloud.google.com/monitoring/api/metrics_gcp#gcp-run). The function's own code never
sees these; here a WSGI wrapper around functions-framework's app writes them as JSON lines
that local_stack.signals turns back into those two metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from local_stack.signals import REQUEST_EVENT


class RequestLog:
    """WSGI middleware: one line per request with its status and latency."""

    def __init__(self, app: Callable, out: Any = sys.stderr) -> None:
        self.app = app
        self.out = out

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        status = [500]

        def recording(status_line: str, headers: list, exc_info: Any = None) -> Callable:
            status[0] = int(status_line.split(" ", 1)[0])
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, recording)
        finally:
            line = {
                "event": REQUEST_EVENT,
                "time": datetime.now(UTC).isoformat(),
                "httpRequest": {
                    "requestMethod": environ.get("REQUEST_METHOD"),
                    "requestUrl": environ.get("PATH_INFO"),
                    "status": status[0],
                    "latency": f"{time.perf_counter() - started:.6f}s",
                },
            }
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.function_host")
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--signature-type", default="http")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    from functions_framework import create_app
    from functions_framework._http import create_server

    app = create_app(args.target, args.source, args.signature_type)
    app.wsgi_app = RequestLog(app.wsgi_app)  # type: ignore[method-assign]
    create_server(app, False).run(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
