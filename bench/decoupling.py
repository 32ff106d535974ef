"""decoupling: our API (outbox + relay) and the naive one in front of the same ingest
endpoint, while ingest is slow, fast, and down."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    ROOT,
    Extra,
    Outcome,
    Record,
    Settings,
    api_env,
    ingest_server,
    load,
    median,
    serve,
)
from local_stack.processes import Child
from runtime import commands

DECOUPLING_WORKERS = 2  # see bench/README.md: the naive API's ceiling is workers / 50 ms


@dataclass
class DownExtra(Extra):
    accepted_while_down: int


def bench_decoupling(body: Path, cfg: Settings, logs: Path, tmp: Path) -> Outcome:
    """Our API (outbox + relay) and the naive one, both in front of the same ingest endpoint,
    rounds interleaved: ingest +50 ms (ours, naive), ingest fast (ours); then ingest down."""
    database = f"sqlite:///{tmp / 'decoupling.sqlite3'}"
    ingest, ingest_url, delay = ingest_server(logs, 0.05)
    api, api_url = serve(
        "api-decoupled", "runtime.api:create_app()", api_env(database), logs, DECOUPLING_WORKERS
    )
    naive, naive_url = serve(
        "naive",
        "bench.apps:naive_app()",
        {"BENCH_INGEST_URL": ingest_url + "/"},
        logs,
        DECOUPLING_WORKERS,
    )
    relay_env = api_env(database) | {
        "SKYBRIDGE_INGEST_URL": ingest_url + "/",
        "SKYBRIDGE_TOKEN_SOURCE": "none",  # the relay's own settings: production defaults
        "PYTHONPATH": str(ROOT),
    }
    relay = Child("relay", commands.relay_argv(), os.environ | relay_env, logs)
    relay.start()
    ours_slow, naive_runs, ours_fast = [], [], []
    try:
        for url in (api_url, naive_url) if cfg.warmup else ():
            load(url + "/v1/submissions", body, cfg, duration=cfg.warmup)
        for _ in range(cfg.repeats):
            delay.write_text("0.05")
            ours_slow.append(load(api_url + "/v1/submissions", body, cfg))
            naive_runs.append(load(naive_url + "/v1/submissions", body, cfg))
            delay.write_text("0")
            ours_fast.append(load(api_url + "/v1/submissions", body, cfg))
        ingest.stop()
        down = load(api_url + "/v1/submissions", body, cfg)
        relay_survived = relay.alive
    finally:
        for child in (relay, api, naive, ingest):
            child.stop()
    rate, naive_rate = median(ours_slow, "rate"), median(naive_runs, "rate")
    p99_slow, p99_fast = median(ours_slow, "p99_ms"), median(ours_fast, "p99_ms")
    records = [
        Record(
            "decoupling-rate",
            round(rate),
            "req/s",
            "naive API forwarding synchronously to a 50 ms ingest",
            round(naive_rate, 1),
            round(rate / naive_rate, 1),
            "≥ 10x",
            rate / naive_rate >= 10,
        ),
        Record(
            "decoupling-p99",
            round(p99_slow, 1),
            "ms",
            "own p99 with a fast ingest",
            round(p99_fast, 1),
            round(p99_slow / p99_fast, 2),
            "≤ 1.5x",
            p99_slow / p99_fast <= 1.5,
        ),
        Record(
            "decoupling-down-errors",
            down["errors"],
            "errors",
            "ingest down for the whole run",
            None,
            None,
            "0",
            down["errors"] == 0 and down["requests"] > 0 and relay_survived,
            DownExtra(accepted_while_down=down["requests"]),
        ),
    ]
    runs = {
        "ingest fast": ours_fast,
        "ingest +50 ms": ours_slow,
        "ingest down": [down],
        "naive, ingest +50 ms": naive_runs,
    }
    bars = {label: (median(r, "p50_ms"), median(r, "p99_ms")) for label, r in runs.items()}
    return Outcome(records, bars=bars)
