"""Google's Pub/Sub emulator (`gcloud beta emulators pubsub`), where gcloud has it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from local_stack.ports import free_port
from local_stack.processes import tcp_ready


class Unavailable(Exception):
    """Why Google's emulator cannot run here (one sentence)."""


def start(data_dir: Path) -> tuple[str, subprocess.Popen]:
    """(host, process) of a fresh emulator; Unavailable if gcloud or the component is absent."""
    if shutil.which("gcloud") is None:
        raise Unavailable("gcloud is not installed, so Google's emulator is not available")
    port = free_port()
    process = subprocess.Popen(
        ["gcloud", "beta", "emulators", "pubsub", "start",
         f"--host-port=127.0.0.1:{port}", f"--data-dir={data_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    ready, deadline = tcp_ready(port), time.monotonic() + 120  # Java, on a busy machine
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise Unavailable(
                "gcloud has no pubsub-emulator component "
                "(gcloud components install pubsub-emulator beta)"
            )
        time.sleep(0.2)
    return f"127.0.0.1:{port}", process


def stop(process: subprocess.Popen) -> None:
    # gcloud runs the Java emulator as a child: signal the whole session.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
