"""The relay keeps reporting the outbox backlog while its breaker is open: that is when the
backlog and age alarms need the data (with no data, they treat it as not breaching)."""

from __future__ import annotations

import json
import threading
import time

from local_stack.ports import free_port
from runtime.db import create_db_engine, migrate
from runtime.envelope import SubmissionIn
from runtime.relay import Relay
from runtime.settings import Settings
from runtime.submissions import accept


class NoTokenSource:
    def token(self) -> None:
        return None


def test_backlog_gauges_keep_coming_while_the_breaker_is_open(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    settings = Settings(
        database_url=url,
        ingest_url=f"http://127.0.0.1:{free_port()}/",  # nothing listens: every batch fails
        relay_breaker_threshold=1,
        relay_breaker_cooldown=30,  # open for the whole test after the first failure
        relay_backoff_max=30,
        relay_backoff_base=0.01,
        relay_gauge_interval=0.1,
        relay_poll_interval=0.01,
        metrics="emf",
    )
    engine = create_db_engine(settings)
    migrate(engine)
    accept(engine, SubmissionIn(type="t", data={}), None)
    relay = Relay(engine, settings, NoTokenSource())
    from runtime.observability import Metrics

    relay.metrics = Metrics("emf", "Skybridge", "relay")
    thread = threading.Thread(target=relay.run)
    thread.start()
    time.sleep(1.5)
    relay.stop()
    thread.join(timeout=35)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    backlog = [d["OutboxBacklog"] for d in documents if "OutboxBacklog" in d]
    assert relay.breaker.wait_time(time.monotonic()) > 0, "the breaker should still be open"
    assert len(backlog) >= 5, backlog
    assert set(backlog) == {1}


def test_the_backlog_gauge_counts_up_to_its_cap(tmp_path, capsys, monkeypatch):
    from runtime.observability import Metrics
    from runtime.relay import loop

    monkeypatch.setattr(loop, "BACKLOG_GAUGE_CAP", 3)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'relay.sqlite3'}",
        ingest_url="http://127.0.0.1:9/",
        metrics="emf",
    )
    engine = create_db_engine(settings)
    migrate(engine)
    for _ in range(5):
        accept(engine, SubmissionIn(type="t", data={}), None)
    relay = Relay(engine, settings, NoTokenSource())
    relay.metrics = Metrics("emf", "Skybridge", "relay")
    relay._report_gauges()
    engine.dispose()
    (document,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert document["OutboxBacklog"] == 3
    assert document["OutboxOldestAgeSeconds"] >= 0
