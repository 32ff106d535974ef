"""Child processes that cannot outlive the local stack.

Each child gets its own process group (so gunicorn's workers go with their master) and, on
Linux, a parent-death signal (so even a SIGKILLed `local_stack` leaves no orphans).

The parent-death signal fires when the *thread* that forked the child exits, not the
process (prctl(2), PR_SET_PDEATHSIG: "the 'parent' in this case is considered to be the
thread that created this process"), so every child is forked by one spawner thread that
lives as long as the process: a component restarted from a short-lived thread (a fault
test, a supervisor's timer) lives as long as the stack, not as long as that thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)


class _Spawner:
    """The one long-lived thread that forks every child (see the module's docstring)."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], **options: Any) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="local-stack-spawner", daemon=True
                )
                self._thread.start()
        if threading.current_thread() is self._thread:
            return subprocess.Popen(argv, **options)
        done: Future[subprocess.Popen] = Future()
        self._requests.put((argv, options, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            argv, options, done = self._requests.get()
            try:
                done.set_result(subprocess.Popen(argv, **options))
            except BaseException as error:  # noqa: BLE001 — handed to the caller
                done.set_exception(error)


_spawner = _Spawner()


class Child:
    """One named process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, ready: Callable[[], bool] | None = None, timeout: float = 30.0) -> Child:
        """Start the process and, given a readiness check, wait until it passes."""
        self.spawn()
        if ready is not None:
            self.wait_ready(ready, timeout)
        return self

    def spawn(self) -> Child:
        """Start the process without waiting for it (see wait_ready)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = _spawner.popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            )
        return self

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 30.0) -> Child:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            if ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f}s; see {self.log_path}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, then SIGKILL what is left; reaps the child either way."""
        if self.process is None:
            return
        if self.alive:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers that outlived their master
        self.process.wait()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process:
            self.process.wait()


def http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 — loopback only
                return True
        except urllib.error.HTTPError:
            return True  # it answers: that is all "ready" means here
        except OSError:
            return False

    return check


def log_ready(path: Path, marker: str) -> Callable[[], bool]:
    """Ready once the process writes `marker` to its log from now on (it has no port)."""
    offset = path.stat().st_size if path.exists() else 0

    def check() -> bool:
        if not path.exists():
            return False
        with path.open("rb") as log:
            log.seek(offset)
            return marker.encode() in log.read()

    return check


def tcp_ready(port: int) -> Callable[[], bool]:
    import socket

    def check() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    return check
