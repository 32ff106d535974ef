"""relay: the relay draining a pre-filled MySQL outbox in batches, against batch size 1."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.harness import Outcome, Record, Settings, ingest_server


def bench_relay(database_url: str, cfg: Settings, logs: Path) -> Outcome:
    from runtime.db import create_db_engine, migrate
    from runtime.envelope import SubmissionIn
    from runtime.relay import Relay
    from runtime.settings import Settings as RuntimeSettings
    from runtime.submissions import accept
    from runtime.token_sources import NoTokenSource

    child, url, _ = ingest_server(logs, 0.0)
    rates: dict[int, list[float]] = {100: [], 1: []}
    try:
        for _ in range(cfg.repeats):
            for batch in (100, 1):
                settings = RuntimeSettings(
                    database_url=database_url,
                    ingest_url=url + "/",
                    relay_batch_size=batch,
                    metrics="none",
                )
                engine = create_db_engine(settings)
                migrate(engine)
                count = 2000 if batch == 100 else 200
                count = max(count // (4 if cfg.duration < 2 else 1), 20)
                for i in range(count):
                    submission = SubmissionIn(type="bench", data={"i": i, "text": "r" * 960})
                    accept(engine, submission, None)
                relay = Relay(engine, settings, NoTokenSource())
                started, delivered = time.perf_counter(), 0
                while delivered < count:
                    delivered += relay.run_once()
                rates[batch].append(count / (time.perf_counter() - started))
                engine.dispose()
    finally:
        child.stop()
    batched, single = statistics.median(rates[100]), statistics.median(rates[1])
    ratio = batched / single
    record = Record(
        "relay",
        round(batched),
        "submissions/s",
        "same relay, batch size 1",
        round(single),
        round(ratio, 1),
        "≥ 20x",
        ratio >= 20,
    )
    return Outcome([record])
