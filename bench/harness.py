"""What every benchmark shares: the record it returns, its settings, the servers it starts,
the load it sends and the CPU it accounts for."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load import measure
from local_stack.ports import free_port
from local_stack.processes import Child, http_ready
from runtime import commands

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# gunicorn workers, as on the EC2 instances (aws_stack/api_service.py: 2 vCPUs, 4 workers).
WORKERS = 4


@dataclass
class Extra:
    """Measurements that explain a record; each benchmark declares its own fields."""


@dataclass
class Record:
    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float | None
    ratio: float | None
    goal: str
    met: bool | None  # None: a figure shown for information, with no goal to meet
    extra: Extra | None = None

    def as_json(self) -> dict[str, Any]:
        """One flat object per record in results.json: the fields, then the extra ones."""
        fields = asdict(self)
        fields.pop("extra")
        return fields | (asdict(self.extra) if self.extra is not None else {})


@dataclass
class Outcome:
    """What one benchmark hands back: its records and what the plot draws from it."""

    records: list[Record]
    # label → latencies in ms, drawn as a histogram (the first one with its p50 and p99)
    histograms: dict[str, list[float]] = field(default_factory=dict)
    # label → (p50, p99) in ms, drawn as a pair of bars
    bars: dict[str, tuple[float, float]] = field(default_factory=dict)
    # lines printed under the table
    notes: list[str] = field(default_factory=list)


@dataclass
class Settings:
    duration: float
    repeats: int
    connections: int = 32
    e2e_seconds: float = 20.0
    cold_runs: int = 7
    warmup: float = (
        2.0  # every worker imports the app and fills its pool (8 connections under gevent)
    )
    workers: int = WORKERS  # gunicorn workers of the accept benchmarks' servers
    # The decoupling rounds' p99 spreads widely round to round (under gevent, 57-429 ms for
    # one configuration): a p99 ratio needs the median of more rounds than a rate does.
    decoupling_repeats: int = 5


def body_file(directory: Path) -> Path:
    """A 1 KiB submission."""
    path = directory / "body.json"
    payload = {"type": "bench.sample", "data": {"text": "x" * 960, "n": 1}}
    path.write_text(json.dumps(payload))
    return path


def load(url: str, body: Path, cfg: Settings, rate: float = 0.0, duration: float = 0.0) -> dict:
    return measure(url, body.read_bytes(), cfg.connections, duration or cfg.duration, rate)


def serve(
    name: str,
    app: str,
    env: dict[str, str],
    logs: Path,
    workers: int = WORKERS,
    options: tuple[str, ...] = (),
) -> tuple[Child, str]:
    """`app` under the production gunicorn command line (plus `options`), access log off."""
    port = free_port()
    argv = commands.api_argv(f"127.0.0.1:{port}", workers, app=app)
    argv[argv.index("--access-logfile") + 1] = "/dev/null"
    argv[-1:-1] = options  # before the app, the last argument
    child = Child(name, argv, os.environ | env | {"PYTHONPATH": str(ROOT)}, logs)
    child.start(http_ready(f"http://127.0.0.1:{port}/healthz"), timeout=60)
    return child, f"http://127.0.0.1:{port}"


def api_env(database_url: str) -> dict[str, str]:
    return {
        "SKYBRIDGE_DATABASE_URL": database_url,
        "SKYBRIDGE_MIGRATE_ON_START": "true",
        "SKYBRIDGE_METRICS": "none",
        "SKYBRIDGE_LOG_LEVEL": "WARNING",
    }


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def mysql_database() -> tuple[str, Callable[[], None]]:
    """A database of its own on the benchmark's MySQL server, and the function that drops it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = os.environ.get("BENCH_MYSQL_URL") or os.environ.get(
        "MYSQL_TEST_URL", "mysql+pymysql://root@127.0.0.1:3306/"
    )
    name = f"skybridge_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}`"))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()

    return make_url(server).set(database=name).render_as_string(False), drop


def ingest_server(logs: Path, delay: float) -> tuple[Child, str, Path]:
    """The fake ingest endpoint; write seconds to the returned file to change its delay."""
    delay_file = logs.parent / f"ingest-delay-{uuid.uuid4().hex[:6]}"
    delay_file.write_text(str(delay))
    child, url = serve(
        "ingest",
        "bench.apps:fake_ingest_app()",
        {"BENCH_INGEST_DELAY_FILE": str(delay_file)},
        logs,
        workers=4,
    )
    return child, url, delay_file


def database_server_pid() -> int | None:
    """The local MySQL/MariaDB server's pid, to account for its CPU (None if not local)."""
    for name in ("mariadbd", "mysqld"):
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
        if found.split():
            return int(found.split()[0])
    return None


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (gunicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        pids += [int(child) for child in children]
    return total


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)
