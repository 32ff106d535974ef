"""`python -m local_stack.rds --database-url URL --allocated-bytes N`: the RDS instance's own
metrics, measured on the local MySQL/MariaDB server the stack uses.

RDS publishes instance metrics in namespace AWS/RDS per DBInstanceIdentifier, one data
point a minute ("Amazon RDS automatically sends metric data to CloudWatch in 1-minute
periods", https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/monitoring-cloudwatch.html;
names and units: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-metrics.html).
Once a period (60 s, or the stack's compressed minute) this writes one Embedded Metric
Format line (the format local_stack.signals reads) with the same names, units and dimension:

- FreeStorageSpace (Bytes): the instance's allocated storage (the environment's
  `db_allocated_storage_gib`) minus what the database's tables take on disk: the allocated
  size of their InnoDB tablespace files (information_schema INNODB_SYS_TABLESPACES on
  MariaDB, INNODB_TABLESPACES on MySQL), which grows as rows are written. Where those are
  not readable (no PROCESS privilege, tables in the system tablespace), the tables'
  DATA_LENGTH + INDEX_LENGTH from information_schema.TABLES: InnoDB's estimate, which its
  statistics refresh at most every 10 s per table;
- CPUUtilization (Percent): the server process's CPU time (utime + stime, /proc/<pid>/stat)
  over the period, as a share of the CPUs it may run on (its affinity: the instance's
  vCPUs). The process is the one the server's @@pid_file names; a server on another
  machine has none here, and then CPUUtilization is not written;
- DatabaseConnections (Count): Threads_connected, this monitor's own connection included
  (as RDS counts its own monitoring connection).

An RDS instance is a MySQL server: with SQLite there is none, so the stack runs this only
on a MySQL/MariaDB URL, and the instance is the whole server (use one of its own: another
database's load on a shared server is the instance's CPU too).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
from sqlalchemy.engine import make_url

from local_stack.signals import LOCAL_RESOURCE

NAMESPACE = "AWS/RDS"
PERIOD = 60.0  # seconds: RDS's 1-minute metrics
STARTED_EVENT = "rds.started"
UNITS = {"FreeStorageSpace": "Bytes", "CPUUtilization": "Percent", "DatabaseConnections": "Count"}
SERVER_PROCESSES = ("mariadbd", "mysqld")


def connect(url: str) -> pymysql.connections.Connection:
    parsed = make_url(url)
    return pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.database,
        autocommit=True,
        connect_timeout=5,
    )


def _scalar(connection: pymysql.connections.Connection, query: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(query)
        row = cursor.fetchone()
    return row[0] if row else None


def used_bytes(connection: pymysql.connections.Connection) -> int:
    """What the connection's database takes on disk (see the module's docstring)."""
    mariadb = "mariadb" in str(_scalar(connection, "SELECT VERSION()")).lower()
    spaces = "INNODB_SYS_TABLESPACES" if mariadb else "INNODB_TABLESPACES"
    # NAME is `schema/table`; compared exactly (a LIKE would take `_` for any character).
    files = (
        f"SELECT SUM(ALLOCATED_SIZE) FROM information_schema.{spaces}"  # noqa: S608 — constant
        " WHERE LEFT(NAME, CHAR_LENGTH(DATABASE()) + 1) = CONCAT(DATABASE(), '/')"
    )
    try:
        on_disk = _scalar(connection, files)
    except pymysql.MySQLError:  # no PROCESS privilege
        on_disk = None
    if on_disk:
        return int(on_disk)
    tables = (
        "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = DATABASE()"
    )
    return int(_scalar(connection, tables))


def connections(connection: pymysql.connections.Connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        row = cursor.fetchone()
    return int(row[1])


def server_pid(connection: pymysql.connections.Connection) -> int | None:
    """The server's process on this machine, or None (elsewhere, or not readable)."""
    pid_file, datadir = (
        _scalar(connection, "SELECT @@pid_file"),
        _scalar(connection, "SELECT @@datadir"),
    )
    try:
        pid = int(Path(datadir or "/", pid_file or "").read_text().strip())
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if name in SERVER_PROCESSES else None


class CpuMeter:
    """A process's CPU utilization between two readings, in percent of its CPUs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpus = len(os.sched_getaffinity(pid))
        self._tick = os.sysconf("SC_CLK_TCK")
        self._last = (time.monotonic(), self._cpu_seconds())

    def _cpu_seconds(self) -> float:
        # Fields after the command name (which may hold spaces): utime and stime are the
        # 12th and 13th, in clock ticks (proc(5)).
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick

    def percent(self) -> float:
        now, cpu = time.monotonic(), self._cpu_seconds()
        then, before = self._last
        self._last = (now, cpu)
        return max(0.0, min(100.0, (cpu - before) / max(now - then, 1e-6) / self.cpus * 100))


def emf_line(metrics: dict[str, float], when: float | None = None) -> str:
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": [["DBInstanceIdentifier"]],
        "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in metrics],
    }
    document: dict[str, Any] = {
        "_aws": {"Timestamp": int((when or time.time()) * 1000), "CloudWatchMetrics": [directive]},
        "DBInstanceIdentifier": LOCAL_RESOURCE,
    }
    return json.dumps(document | metrics)


class Monitor:
    """Samples the instance once a period; `sample()` is one period's data point."""

    def __init__(self, url: str, allocated_bytes: int) -> None:
        self.url, self.allocated_bytes = url, allocated_bytes
        self.connection = connect(url)
        pid = server_pid(self.connection)
        self.cpu = CpuMeter(pid) if pid is not None else None

    def sample(self) -> dict[str, float]:
        try:
            try:
                self.connection.ping()
            except pymysql.MySQLError:  # the server went away and came back: a new connection
                self.connection = connect(self.url)
            metrics = {
                "FreeStorageSpace": float(self.allocated_bytes - used_bytes(self.connection)),
                "DatabaseConnections": float(connections(self.connection)),
            }
        except pymysql.MySQLError:
            metrics = {}  # the instance is away: RDS writes no point for it either
        if self.cpu is not None:
            metrics["CPUUtilization"] = round(self.cpu.percent(), 2)
        return metrics

    def run(self, period: float, stopped: threading.Event, write: Callable[[str], None]) -> None:
        next_at = time.monotonic() + period
        while not stopped.wait(max(0.0, next_at - time.monotonic())):
            next_at += period
            if metrics := self.sample():
                write(emf_line(metrics))

    def close(self) -> None:
        self.connection.close()


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.rds", description=__doc__)
    parser.add_argument("--database-url", required=True, help="the stack's mysql+pymysql:// URL")
    parser.add_argument("--allocated-bytes", type=int, required=True,
                        help="the instance's allocated storage")  # fmt: skip
    parser.add_argument("--period", type=float, default=PERIOD, help="seconds between points")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    monitor = Monitor(args.database_url, args.allocated_bytes)
    _print(json.dumps({"event": STARTED_EVENT, "cpu": monitor.cpu is not None,
                       "cpus": monitor.cpu.cpus if monitor.cpu else None}))  # fmt: skip
    try:
        monitor.run(args.period, stopped, _print)
    except KeyboardInterrupt:
        pass
    finally:
        monitor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
