"""The local stack's commands, run the way a person runs them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from local_stack.stack import LocalStack, Options

pytestmark = pytest.mark.slow


def test_demo_runs_its_acts_delivers_everything_and_draws_the_timeline(tmp_path):
    argv = [sys.executable, "-m", "local_stack", "--workdir", str(tmp_path), "demo",
            "--rate", "5", "--outage", "4", "--timeout", "90", "--no-aws-alarms"]  # fmt: skip
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=420, env=os.environ | {"COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for act in ("Act 1 — normal traffic", "Act 2 — GCP away", "Act 3 — GCP back", "Act 4"):
        assert act in out
    # Not a terminal: the live view degrades to one plain line a second.
    assert re.search(r"accepted \d+/s forwarded \d+/s stored \d+/s backlog \d+", out)
    assert re.search(r"breaker open", out), "the breaker never opened while GCP was away"
    accepted = int(re.search(r"accepted \(202\)\s+│\s+(\d+)", out).group(1))
    assert f"all {accepted} submissions stored exactly as sent" in out
    assert re.search(r"end to end p95\s+│\s+\d+ ms", out)
    picture = tmp_path / "timeline.png"
    assert f"timeline: {picture}" in out
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "stopped; nothing left running" in out


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_prints_endpoints_and_stops_everything_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "--workdir", str(tmp_path), "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
    )
    output = []
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        output.append(line)
        if "running" in line or not line:
            break
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", "".join(output))]
    assert len(ports) >= 5, "".join(output)
    assert all(listening(port) for port in ports)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    time.sleep(0.5)
    assert not [port for port in ports if listening(port)]


def test_smoke_command_passes_against_the_local_stack(tmp_path):
    with LocalStack(Options(workdir=tmp_path)) as stack:
        argv = [
            sys.executable, "-m", "smoke",
            "--api-url", stack.url("api"),
            "--bucket", stack.names.bucket,
            "--storage-endpoint", stack.gcs.url,
            "--count", "15",
            "--timeout", "60",
        ]  # fmt: skip
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke: OK" in result.stdout
    assert "stored 15" in result.stdout
    # Only the summary: a stray progress `1` per submission used to come first.
    assert result.stdout.splitlines()[0].startswith("sent 15,"), result.stdout
