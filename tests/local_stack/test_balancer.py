"""The load balancer's stand-in records what an Application Load Balancer records: the
target's codes and response time when the target answers, its own 502/503/504 when it does
not (local_stack.balancer cites the ALB's documentation)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from local_stack.balancer import Balancer
from local_stack.ports import free_port
from local_stack.signals import Point, emf_points


class Target(BaseHTTPRequestHandler):
    """Answers with the status named by the path (/status/500), echoing what it was sent;
    /hang sleeps longer than the balancer's idle timeout in these tests."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if self.path == "/hang":
            time.sleep(1.0)
        status = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/status/") else 200
        length = int(self.headers.get("Content-Length") or 0)
        echo = {"body": self.rfile.read(length).decode(), "xff": self.headers["X-Forwarded-For"]}
        data = json.dumps(echo).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def through(target: str | None, path: str, **headers: str) -> tuple[requests.Response, list]:
    lines: list[str] = []
    with Balancer(target, write=lines.append, idle_timeout=0.3) as balancer:
        session = requests.Session()
        session.trust_env = False
        response = session.post(f"{balancer.url}{path}", data=b"payload", headers=headers,
                                timeout=5)  # fmt: skip
    points = [p for line in lines for p in emf_points(json.loads(line))]
    return response, points


def by_load_balancer(points: list[Point]) -> dict[str, float]:
    return {p.name: p.value for p in points if p.dimensions == (("LoadBalancer", "local"),)}


def test_a_target_answer_is_passed_through_and_counted_as_the_targets(target):
    response, points = through(target, "/ok", **{"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    echo = response.json()
    assert echo["body"] == "payload"
    assert echo["xff"] == "203.0.113.9, 127.0.0.1"  # the peer appended, as the ALB does
    metrics = by_load_balancer(points)
    assert metrics.keys() == {"RequestCount", "HTTPCode_Target_2XX_Count", "TargetResponseTime"}
    assert 0 < metrics["TargetResponseTime"] < 1
    per_group = {
        p.name for p in points if dict(p.dimensions).keys() == {"LoadBalancer", "TargetGroup"}
    }
    assert per_group == metrics.keys()


def test_a_target_5xx_is_the_targets_not_the_load_balancers(target):
    response, points = through(target, "/status/503")
    assert response.status_code == 503
    metrics = by_load_balancer(points)
    assert metrics["HTTPCode_Target_5XX_Count"] == 1
    assert not {"HTTPCode_ELB_5XX_Count", "HTTPCode_ELB_503_Count"} & metrics.keys()


def test_a_target_that_refuses_connections_is_a_502_from_the_load_balancer():
    closed = free_port()  # nothing listens there
    response, points = through(f"http://127.0.0.1:{closed}", "/v1/submissions")
    assert response.status_code == 502
    assert response.headers["Server"] == "awselb/2.0"
    assert by_load_balancer(points) == {
        "RequestCount": 1, "HTTPCode_ELB_5XX_Count": 1, "HTTPCode_ELB_502_Count": 1,
    }  # fmt: skip
    assert all(dict(p.dimensions).keys() == {"LoadBalancer"} for p in points)


def test_a_target_slower_than_the_idle_timeout_is_a_504(target):
    response, points = through(target, "/hang")
    assert response.status_code == 504
    metrics = by_load_balancer(points)
    assert metrics["HTTPCode_ELB_504_Count"] == metrics["HTTPCode_ELB_5XX_Count"] == 1
    assert "TargetResponseTime" not in metrics


def test_no_registered_target_is_a_503_that_is_not_a_request():
    response, points = through(None, "/v1/submissions")
    assert response.status_code == 503
    assert by_load_balancer(points) == {"HTTPCode_ELB_5XX_Count": 1, "HTTPCode_ELB_503_Count": 1}
