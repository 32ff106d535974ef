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


def test_demo_delivers_everything_and_leaves_nothing_running(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "local_stack", "--workdir", str(tmp_path), "demo", "--count", "40"],
        capture_output=True,
        text=True,
        timeout=240,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all 40 submissions stored exactly as sent" in result.stdout
    assert re.search(r"end-to-end p95\s+│\s+\d+ ms", result.stdout)
    assert "stopped; nothing left running" in result.stdout


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
