"""`python -m local_stack.balancer --port P --target URL`: the Application Load Balancer's
stand-in, a reverse proxy in front of the API that records what the ALB records.

For each request it writes one Embedded Metric Format line (the format local_stack.signals
reads) in namespace AWS/ApplicationELB, with the ALB's documented semantics
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
and .../application/load-balancer-troubleshooting.html#load-balancer-http-error-codes):

- a response the target sent counts as HTTPCode_Target_<N>XX_Count, and TargetResponseTime
  is the seconds from the request leaving the load balancer until the target's response
  headers arrive; both per LoadBalancer and per LoadBalancer + TargetGroup;
- a response the load balancer makes itself counts as HTTPCode_ELB_5XX_Count and
  HTTPCode_ELB_<code>_Count, per LoadBalancer: 502 when the target refuses or resets the
  connection, or closes it or answers malformed; 504 when the connection is not made within
  the connect timeout (10 s) or no response comes within the idle timeout (60 s by default);
  503 when the target group has no registered target;
- RequestCount counts every request for which a target was chosen (the 503 for "no
  target" is not counted), so an API that is down shows as requests and ELB 5xx, and no
  TargetResponseTime.

Like the ALB it appends the peer's address to X-Forwarded-For (runtime.api.limits trusts
that one hop) and sets X-Forwarded-Proto and X-Forwarded-Port. Health checks are the
prober's (local_stack.probe), which also writes HealthyHostCount.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from local_stack.signals import LOCAL_RESOURCE

NAMESPACE = "AWS/ApplicationELB"
CONNECT_TIMEOUT = 10.0  # the ALB's, to a target; not configurable on AWS
IDLE_TIMEOUT = 60.0  # the ALB's default idle timeout
# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own, not forwarded either way.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade"}  # fmt: skip


def emf_line(metrics: dict[str, float], target: bool, when: float | None = None) -> str:
    """One request's data points as EMF: target metrics per LoadBalancer and per
    LoadBalancer + TargetGroup, the load balancer's own codes per LoadBalancer only."""
    units = {"TargetResponseTime": "Seconds"}
    dims = [["LoadBalancer"], ["LoadBalancer", "TargetGroup"]] if target else [["LoadBalancer"]]
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": dims,
        "Metrics": [{"Name": name, "Unit": units.get(name, "Count")} for name in metrics],
    }
    document: dict[str, Any] = {
        "_aws": {"Timestamp": int((when or time.time()) * 1000), "CloudWatchMetrics": [directive]},
        "LoadBalancer": LOCAL_RESOURCE,
        "TargetGroup": LOCAL_RESOURCE,
    }
    return json.dumps(document | metrics)


class Balancer:
    """The proxy; `start()` serves in a thread, `stop()` ends it. Each request's EMF line
    goes to `write` (a process's stdout by default)."""

    def __init__(
        self,
        target: str | None,
        port: int = 0,
        write: Callable[[str], None] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.target = urlsplit(target) if target else None
        self.connect_timeout, self.idle_timeout = connect_timeout, idle_timeout
        self._write = write or _print
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Balancer:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def record(self, metrics: dict[str, float], target: bool) -> None:
        line = emf_line(metrics, target)
        with self._lock:
            self._write(line)

    # -- forwarding -----------------------------------------------------------------------

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) for one request, recording its metrics."""
        if self.target is None:
            self.record({"HTTPCode_ELB_5XX_Count": 1, "HTTPCode_ELB_503_Count": 1}, False)
            return _elb_error(503, "Service Temporarily Unavailable")
        connection = http.client.HTTPConnection(
            self.target.hostname or "127.0.0.1", self.target.port or 80,
            timeout=self.connect_timeout,
        )  # fmt: skip
        try:
            try:
                connection.connect()
            except TimeoutError:
                return self._elb(504, "Gateway Time-out")
            except OSError:  # refused, reset, unreachable
                return self._elb(502, "Bad Gateway")
            connection.sock.settimeout(self.idle_timeout)
            sent = time.monotonic()
            try:
                connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    connection.putheader(name, value)
                connection.endheaders(body or None)
                response = connection.getresponse()
                waited = time.monotonic() - sent
                data = response.read()
            except TimeoutError:
                return self._elb(504, "Gateway Time-out")
            except (OSError, http.client.HTTPException):  # closed, reset, malformed
                return self._elb(502, "Bad Gateway")
        finally:
            connection.close()
        status = response.status
        metrics = {"RequestCount": 1, f"HTTPCode_Target_{status // 100}XX_Count": 1,
                   "TargetResponseTime": waited}  # fmt: skip
        self.record(metrics, True)
        kept = [(k, v) for k, v in response.getheaders()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]  # fmt: skip
        return status, kept, data

    def _elb(self, status: int, reason: str) -> tuple[int, list[tuple[str, str]], bytes]:
        # A target was chosen: the request counts, the error is the load balancer's.
        self.record({"RequestCount": 1, "HTTPCode_ELB_5XX_Count": 1,
                     f"HTTPCode_ELB_{status}_Count": 1}, False)  # fmt: skip
        return _elb_error(status, reason)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive with clients, as the ALB

            def _proxy(self) -> None:
                body = _read_body(self)
                peer = self.client_address[0]
                headers = [(k, v) for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP | {"content-length",
                                                             "x-forwarded-for"}]  # fmt: skip
                forwarded = self.headers.get("X-Forwarded-For")
                headers += [
                    ("X-Forwarded-For", f"{forwarded}, {peer}" if forwarded else peer),
                    ("X-Forwarded-Proto", "http"),
                    ("X-Forwarded-Port", str(balancer.port)),
                    ("Content-Length", str(len(body))),
                ]
                status, out, data = balancer.forward(self.command, self.path, headers, body)
                self.send_response_only(status)
                for name, value in out:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the EMF line is the record

        return Handler


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _elb_error(status: int, reason: str) -> tuple[int, list[tuple[str, str]], bytes]:
    page = f"<html><body><center><h1>{status} {reason}</h1></center></body></html>\n"
    return status, [("Content-Type", "text/html"), ("Server", "awselb/2.0")], page.encode()


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.balancer", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", help="the target's base URL (none: no registered target)")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT)
    args = parser.parse_args(argv)
    balancer = Balancer(args.target, args.port, idle_timeout=args.idle_timeout)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    balancer.start()
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    balancer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
