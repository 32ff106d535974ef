"""The relay outlives the database: connection errors back off and retry, the relay
reports itself unhealthy in its metrics, and it never exits for a transient fault."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy.engine import make_url

from local_stack.ports import free_port
from runtime.db import create_db_engine, migrate
from runtime.observability import Metrics
from runtime.relay import Relay
from runtime.settings import Settings
from tests.fakes.ingest import FakeIngest
from tests.fakes.tcp_proxy import TcpProxy
from tests.runtime.test_relay import NoTokenSource, settings_for, statuses, submit


class Recorded(Metrics):
    def __init__(self) -> None:
        super().__init__("none", "", "relay")
        self.values: list[dict[str, float]] = []

    def emit(self, values, **properties) -> None:
        self.values.append({name: value for name, (value, _) in values.items()})

    def last(self, name: str) -> float | None:
        return next((v[name] for v in reversed(self.values) if name in v), None)


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_relay_process_keeps_running_while_the_database_is_unreachable(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SKYBRIDGE_DATABASE_URL": f"mysql+pymysql://root@127.0.0.1:{free_port()}/nowhere",
        "SKYBRIDGE_INGEST_URL": "http://127.0.0.1:9/",
        "SKYBRIDGE_RELAY_BACKOFF_BASE": "0.05",
        "SKYBRIDGE_METRICS": "log",
    }
    log = tmp_path / "relay.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "runtime.relay"], env=env, stderr=sink)
    try:
        failures = lambda: log.read_text().count('"event": "relay.db_unavailable"')  # noqa: E731
        assert wait_for(lambda: failures() >= 3, timeout=60), log.read_text()
        assert process.poll() is None, log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
    stderr = log.read_text()
    assert '"RelayHealthy": 0' in stderr
    assert "Traceback" not in stderr


@pytest.mark.mysql
def test_the_relay_waits_out_a_database_outage_and_resumes(mysql_database_url):
    url = make_url(mysql_database_url)
    direct = create_db_engine(Settings(database_url=mysql_database_url))
    migrate(direct)
    with FakeIngest() as ingest, TcpProxy(url.host or "127.0.0.1", url.port or 3306) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        engine = create_db_engine(Settings(database_url=proxied))
        metrics = Recorded()
        relay = Relay(
            engine,
            settings_for(proxied, ingest.url, relay_backoff_base=0.05),
            NoTokenSource(),
            metrics=metrics,
        )
        runner = threading.Thread(target=relay.run)
        runner.start()
        try:
            before = submit(direct, 5)
            assert wait_for(lambda: set(statuses(direct).values()) == {"forwarded"})
            proxy.cut()
            during = submit(direct, 5)
            assert wait_for(lambda: not relay.healthy), "the outage was never noticed"
            assert metrics.last("RelayHealthy") == 0
            time.sleep(1.0)
            assert runner.is_alive(), "the relay exited when the database went away"
            proxy.restore()
            assert wait_for(lambda: relay.healthy)
            assert wait_for(lambda: set(statuses(direct).values()) == {"forwarded"})
            assert wait_for(lambda: metrics.last("RelayHealthy") == 1)
            assert set(statuses(direct)) == {*before, *during}
        finally:
            relay.stop()
            runner.join(30)
            engine.dispose()
    with direct.begin() as connection:
        from sqlalchemy import text

        for table in ("outbox", "submissions", "schema_migrations"):
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    direct.dispose()
