"""The command lines that run the runtime: the same on EC2 (systemd units) and locally."""

from __future__ import annotations

import sys
from pathlib import Path

APP = "runtime.api:create_app()"
FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"


def api_argv(bind: str, workers: int, python: str = sys.executable, app: str = APP) -> list[str]:
    """gunicorn serving the API (or, for benchmarks, another `app` with the same settings):
    gevent workers with read deadlines (runtime.serving.ApiWorker: a slow client costs a
    connection, not a worker; bench/README.md has the measurements that chose it), JSON
    logs (gunicorn's own lines too), access log to stdout."""
    return [
        python, "-m", "gunicorn",
        "--bind", bind,
        "--workers", str(workers),
        "--worker-class", "runtime.serving.ApiWorker",
        # Idle keep-alive longer than the ALB's 60 s idle timeout (AWS: else the target may
        # close a connection the ALB is reusing, a 502); also each request's header deadline.
        "--keep-alive", "75",
        "--worker-tmp-dir", "/dev/shm",  # noqa: S108 — heartbeat files off the disk
        "--graceful-timeout", "20",
        "--access-logfile", "-",
        "--logger-class", "runtime.serving.JsonLogger",  # every line JSON, fields escaped
        app,
    ]  # fmt: skip


def relay_argv(python: str = sys.executable) -> list[str]:
    return [python, "-m", "runtime.relay"]


def migrate_argv(python: str = sys.executable) -> list[str]:
    return [python, "-m", "runtime.db", "migrate"]


def function_argv(target: str, port: int, python: str = sys.executable) -> list[str]:
    """functions-framework serving one of the two functions, as Cloud Functions does."""
    signature = "cloudevent" if target == "store" else "http"
    return [
        python, "-m", "functions_framework",
        "--target", target,
        "--source", str(FUNCTIONS_DIR / f"{target}.py"),
        "--signature-type", signature,
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
