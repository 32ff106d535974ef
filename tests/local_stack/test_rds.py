"""The RDS instance's stand-in (local_stack.rds): its data points are what CloudWatch reads
from RDS (names, units, dimension), and what it measures moves with the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy.engine import make_url

from local_stack import rds
from local_stack.signals import emf_points


def test_a_data_point_has_rds_names_units_and_dimension():
    line = rds.emf_line({"FreeStorageSpace": 5.0, "CPUUtilization": 12.5,
                         "DatabaseConnections": 3.0}, when=1_700_000_000)  # fmt: skip
    points = {p.name: p for p in emf_points(json.loads(line))}
    instance = (("DBInstanceIdentifier", "local"),)
    assert {name: (p.namespace, p.unit, p.dimensions, p.value, p.time)
            for name, p in points.items()} == {
        "FreeStorageSpace": ("AWS/RDS", "Bytes", instance, 5.0, 1_700_000_000),
        "CPUUtilization": ("AWS/RDS", "Percent", instance, 12.5, 1_700_000_000),
        "DatabaseConnections": ("AWS/RDS", "Count", instance, 3.0, 1_700_000_000),
    }  # fmt: skip


def test_cpu_utilization_is_a_share_of_the_cpus_the_process_may_use():
    cpu = max(os.sched_getaffinity(0))
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        time.sleep(0.3)
        meters = {"idle": rds.CpuMeter(idle.pid), "busy": rds.CpuMeter(busy.pid)}
        assert meters["busy"].cpus == 1
        time.sleep(1.5)
        percent = {name: meter.percent() for name, meter in meters.items()}
    finally:
        idle.kill()
        busy.kill()
    assert percent["idle"] < 5, percent
    assert percent["busy"] > 10 * max(percent["idle"], 1), percent  # loaded machines share


@pytest.mark.mysql
def test_used_storage_grows_with_the_rows_written_and_connections_count(mysql_url):
    from sqlalchemy import create_engine, text

    engine = create_engine(mysql_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE filler (id INT PRIMARY KEY AUTO_INCREMENT,"
                                " body MEDIUMTEXT) ENGINE=InnoDB"))  # fmt: skip
    monitor = rds.connect(mysql_url)
    try:
        before = rds.used_bytes(monitor)
        connected = rds.connections(monitor)
        with engine.begin() as connection:
            for _ in range(16):
                connection.execute(text("INSERT INTO filler (body) VALUES (:b)"),
                                   {"b": os.urandom(128 * 1024).hex()})  # fmt: skip
        after = rds.used_bytes(monitor)
        assert after - before >= 4 * 1024**2, (before, after)  # 16 rows of 256 KiB, at once
        assert connected >= 1
        if make_url(mysql_url).host in ("127.0.0.1", "localhost"):
            pid = rds.server_pid(monitor)
            assert pid is not None
            with open(f"/proc/{pid}/comm") as comm:
                assert comm.read().strip() in rds.SERVER_PROCESSES
    finally:
        monitor.close()
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE filler"))
        engine.dispose()


@pytest.mark.mysql
def test_a_dropped_connection_costs_no_data_point(mysql_url):
    """The server closes the monitor's connection (a restart, a failover): the next
    period's point comes over a new one, without a deprecated reconnecting ping."""
    import warnings

    monitor = rds.Monitor(mysql_url, allocated_bytes=20 * 1024**3)
    try:
        first = monitor.sample()
        killer = rds.connect(mysql_url)
        with killer.cursor() as cursor:
            cursor.execute(f"KILL {monitor.connection.thread_id()}")
        killer.close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            second = monitor.sample()
    finally:
        monitor.close()
    assert {"FreeStorageSpace", "DatabaseConnections"} <= first.keys() & second.keys()
    assert 0 < second["FreeStorageSpace"] <= 20 * 1024**3
