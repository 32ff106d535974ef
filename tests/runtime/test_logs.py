"""Every log line is valid JSON whatever the client sends, under the same gunicorn command
line EC2 runs; request ids are accepted only in a safe shape, else replaced."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

from local_stack.ports import free_port
from local_stack.processes import Child, http_ready
from runtime import commands

SURROGATE = b'{"type":"a","data":{"\\udfff":1}}'
HOSTILE_REQUEST_IDS = ['a\\"b', 'x"}{"severity":"CRITICAL', "tab\there", "é" * 4, "x" * 300]


@pytest.mark.parametrize("incoming", HOSTILE_REQUEST_IDS)
def test_an_unsafe_request_id_is_replaced(client, incoming):
    response = client.get("/healthz", headers={"X-Request-Id": incoming})
    assert response.headers["X-Request-Id"] != incoming
    assert len(response.headers["X-Request-Id"]) == 26  # one of ours


@pytest.mark.parametrize("incoming", ["0f8fad5b-d9cb-469f-a165-70867728950e", "Root=1-abc.def:9"])
def test_a_safe_request_id_is_kept(client, incoming):
    assert (
        client.get("/healthz", headers={"X-Request-Id": incoming}).headers["X-Request-Id"]
        == incoming
    )


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_every_line_gunicorn_and_the_app_write_is_json(tmp_path):
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SKYBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SKYBRIDGE_MIGRATE_ON_START": "true",
        "SKYBRIDGE_METRICS": "log",
    }
    api = Child(
        "api", commands.api_argv(f"127.0.0.1:{port}", 1, python=sys.executable), env, tmp_path
    )
    api.start(http_ready(f"http://127.0.0.1:{port}/healthz"), timeout=30)
    try:
        hostile = [
            b"GET /v1/submissions/%0A%7B%22severity%22:%22CRITICAL%22%7D HTTP/1.1\r\n"
            b"Host: x\r\nConnection: close\r\n\r\n",
            b'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\\"b\\\r\n'
            b"Connection: close\r\n\r\n",
            b"GET /%5C%22%0D%0A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"POST /v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(SURROGATE), SURROGATE),
            b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"BROKEN\r\n\r\n",
        ]
        for request in hostile:
            raw_request(port, request)
    finally:
        api.stop()
    lines = [line for line in api.log_path.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    access = [entry for entry in parsed if entry.get("event") == "http.access"]
    assert len(access) >= 5
    assert any("\n" in entry["path"] for entry in access), "the path is logged, escaped"
