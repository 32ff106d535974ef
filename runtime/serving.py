"""How gunicorn runs the API: gevent workers with request-read deadlines, and its own log
lines as JSON, like every other line we write.

`python -m gunicorn --worker-class runtime.serving.ApiWorker --logger-class
runtime.serving.JsonLogger ...` (see runtime.commands).

gunicorn's access-log format is a printf template: a `%0A` in the path or a `"` or `\\` in a
header went into the line raw, so a client could end a line early or forge a field. Here
each field is a JSON value, serialised by the same formatter as the app's logs.

Sync workers hold a worker for a whole request, so as many slow clients as workers stopped
the API (gunicorn's docs: sync workers need a buffering proxy in front; the ALB is not one
for bodies). Under gevent a connection is a greenlet: a slow client costs a connection. Its
deadlines: a request's headers within `--keep-alive` seconds (gunicorn's gevent worker bounds
every header read with it), its body within `request_body_seconds`, read in full (up to the
body limit) before the app sees it, else 408 and the connection is closed.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from datetime import datetime
from typing import Any

import gevent
from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http import wsgi
from gunicorn.workers.ggevent import GeventWorker

from runtime.api.problems import PROBLEM_TYPE, TYPE_BASE
from runtime.observability import JsonFormatter, lean_log_records
from runtime.settings import SettingsError, get_settings


class JsonLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        lean_log_records()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        # A worker that cannot load the app because a setting is wrong: the sentence naming
        # the variable, not a traceback through gunicorn's loader (then "failed to boot").
        error = sys.exc_info()[1]
        if isinstance(error, SettingsError):
            self.error_log.error("%s", error, extra={"event": "settings.invalid"})
            return
        super().exception(msg, *args, **kwargs)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        code = int(status.split(None, 1)[0]) if isinstance(status, str) else int(status)
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), None
        )
        self.access_log.info(
            "request",
            extra={
                "event": "http.access",
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": code,
                "duration_ms": request_time.seconds * 1000 + request_time.microseconds // 1000,
                "request_id": request_id,
            },
        )


class _Answered:
    """What JsonLogger.access reads of a response the worker wrote itself."""

    def __init__(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.headers = headers


class _WaitingForHeaders:
    """Around each header read: gunicorn's deadline (`--keep-alive`), and marked as waiting."""

    def __init__(self, waiting: set[Any], seconds: float) -> None:
        self.waiting = waiting
        self.timeout = gevent.Timeout(seconds, False)  # False: the read just ends

    def __enter__(self) -> None:
        self.current = gevent.getcurrent()
        self.waiting.add(self.current)
        self.timeout.start()

    def __exit__(self, kind: Any, error: Any, trace: Any) -> bool:
        self.waiting.discard(self.current)
        self.timeout.close()
        return error is self.timeout


class OneSendResponse(wsgi.Response):
    """gunicorn's HTTP/1 response, sending the header block together with the first body
    bytes: one `sendall` (one system call, one TCP segment) for a 202 instead of two.

    gunicorn sends the header block as soon as the body starts and then each body chunk;
    under gevent each send is a trip through its socket layer. In a profile of the accept
    path (4 workers, 32 connections, MySQL) `sendall` was 16 % of the workers' CPU, the
    header block about half of it. Chunked bodies, files and bodyless answers go out as
    gunicorn sends them, after the headers held back.
    """

    _pending = b""

    def send_headers(self) -> None:
        if self.headers_sent:  # type: ignore[has-type]
            return
        tosend = self.default_headers()
        tosend.extend([f"{name}: {value}\r\n" for name, value in self.headers])
        self._pending = ("{}\r\n".format("".join(tosend))).encode("latin-1")
        self.headers_sent = True

    def flush_headers(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, b""
            util.write(self.sock, pending)

    def _emit_body(self, data: bytes) -> None:
        if self._pending and not self.chunked:
            pending, self._pending = self._pending, b""
            util.write(self.sock, pending + data)
            return
        self.flush_headers()
        super()._emit_body(data)

    def sendfile(self, respiter: Any) -> Any:
        self.send_headers()
        self.flush_headers()
        return super().sendfile(respiter)

    def close(self) -> None:
        self.send_headers()
        self.flush_headers()  # an empty body, HEAD, 204 or 304: the headers alone
        super().close()


class ApiWorker(GeventWorker):
    """gunicorn's gevent worker with a deadline on the body and a prompt graceful stop."""

    def init_process(self) -> None:
        # This worker process's HTTP/1 responses: gunicorn.http.wsgi.create builds them
        # from the module's Response (HTTP/2 passes a class of its own).
        wsgi.Response = OneSendResponse
        settings = get_settings()
        self.body_seconds = settings.request_body_seconds
        self.body_limit = settings.max_body_bytes
        # Connections waiting for a request's headers, closed at once on shutdown instead of
        # holding the worker for the graceful timeout (the ALB keeps idle ones open).
        self.waiting: set[Any] = set()
        super().init_process()

    def timeout_ctx(self) -> _WaitingForHeaders:
        return _WaitingForHeaders(self.waiting, self.cfg.keepalive)

    def handle_exit(self, sig: Any, frame: Any) -> None:
        super().handle_exit(sig, frame)
        for greenlet in list(self.waiting):
            # No request in progress: gunicorn's handler takes StopIteration as "close".
            greenlet.kill(StopIteration, block=False)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        started = datetime.now()
        timeout = gevent.Timeout(self.body_seconds)
        try:
            with timeout:
                self.buffer_body(req)
        except gevent.Timeout as error:
            if error is not timeout:
                raise
            self.request_timeout(req, sock, datetime.now() - started)
            raise StopIteration from None  # the caller closes the connection
        return super().handle_request(listener_name, req, sock, addr)

    def buffer_body(self, req: Any) -> None:
        """Read the body (at most the limit and one byte) so the app never waits on the client."""
        length = req.headers and next(
            (value for name, value in req.headers if name == "CONTENT-LENGTH"), None
        )
        if length is not None and length.isdigit() and int(length) > self.body_limit:
            return  # refused (413) from its Content-Length, unread
        data = req.body.read(self.body_limit + 1)
        if len(data) > self.body_limit:
            req.must_close = True  # the app answers 413; the rest of the body stays unread
        req.body = io.BytesIO(data)

    def request_timeout(self, req: Any, sock: Any, elapsed: Any) -> None:
        status = "408 Request Timeout"
        body = json.dumps(
            {
                "type": TYPE_BASE + "request-timeout",
                "title": "Request Timeout",
                "status": 408,
                "detail": f"the request body did not arrive within {self.body_seconds:g} s",
            }
        ).encode()
        headers = [
            ("Content-Type", PROBLEM_TYPE),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        with contextlib.suppress(OSError):
            sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        environ = {"REQUEST_METHOD": req.method, "PATH_INFO": req.path}
        self.log.access(_Answered(status, headers), req, environ, elapsed)
