"""accept, accept-sqlite: our API's accept path against the Flask parse-and-202 ceiling,
with our API without its write and the straightforward Flask + SQLAlchemy build alongside."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    Extra,
    Outcome,
    Record,
    Settings,
    api_env,
    database_server_pid,
    load,
    median,
    process_cpu,
    serve,
)
from local_stack.processes import Child


@dataclass
class AcceptExtra(Extra):
    # Both sides are CPU-bound on a small machine, so CPU per request explains the ratio;
    # our API without its database write, measured alongside, is the ceiling of the ratio.
    server_cpu_ms_per_request: float
    baseline_cpu_ms_per_request: float
    p99_ms: float
    errors: int
    without_write_value: float
    without_write_ratio: float
    without_write_cpu_ms_per_request: float
    straightforward_value: float
    straightforward_ratio: float
    straightforward_cpu_ms_per_request: float
    database_server_cpu_ms_per_request: float | None = None
    # The best ratio with the database server doing what it does now and our process
    # spending nothing on the write: CPU per request, baseline over ours.
    bound_with_free_write_ratio: float | None = None


def measured(url: str, body: Path, cfg: Settings, server: Child, database: int | None) -> dict:
    """One load run, plus the CPU the server (and the database server) spent per request."""
    assert server.process is not None
    before = process_cpu(server.process.pid), process_cpu(database) if database else 0.0
    result = load(url, body, cfg)
    after = process_cpu(server.process.pid), process_cpu(database) if database else 0.0
    done = max(result["requests"], 1)
    result["server_cpu_ms"] = (after[0] - before[0]) * 1000 / done
    result["database_cpu_ms"] = (after[1] - before[1]) * 1000 / done if database else None
    return result


def side_by_side(
    apps: list[tuple[str, str, dict]],
    body: Path,
    cfg: Settings,
    logs: Path,
    database: int | None = None,
) -> list[list[dict]]:
    """Alternate runs of each (name, app, env) against its own server: one list per app."""
    servers = []
    try:
        for name, app, env in apps:
            servers.append(serve(f"{name}-{uuid.uuid4().hex[:4]}", app, env, logs, cfg.workers))
        runs: list[list[dict]] = [[] for _ in servers]
        for _, url in servers if cfg.warmup else []:  # warm-up: every worker's first calls
            load(url + "/v1/submissions", body, cfg, duration=cfg.warmup)
        for _ in range(cfg.repeats):
            for (child, url), into in zip(servers, runs, strict=True):
                into.append(measured(url + "/v1/submissions", body, cfg, child, database))
    finally:
        for child, _ in servers:
            child.stop()
    return runs


def bench_accept(name: str, database_url: str, body: Path, cfg: Settings, logs: Path) -> Outcome:
    database = database_server_pid() if database_url.startswith("mysql") else None
    ours, base, unwritten, textbook = side_by_side(
        [
            ("subject", "runtime.api:create_app()", api_env(database_url)),
            ("baseline", "bench.apps:baseline_app()", {}),
            ("without-write", "bench.apps:api_without_write_app()", api_env(database_url)),
            ("straightforward", "bench.apps:straightforward_app()", api_env(database_url)),
        ],
        body,
        cfg,
        logs,
        database,
    )
    rate, baseline = median(ours, "rate"), median(base, "rate")
    ratio = rate / baseline
    extra = AcceptExtra(
        server_cpu_ms_per_request=round(median(ours, "server_cpu_ms"), 2),
        baseline_cpu_ms_per_request=round(median(base, "server_cpu_ms"), 2),
        p99_ms=round(median(ours, "p99_ms"), 1),
        errors=sum(run["errors"] for run in ours),
        without_write_value=round(median(unwritten, "rate")),
        without_write_ratio=round(median(unwritten, "rate") / baseline, 2),
        without_write_cpu_ms_per_request=round(median(unwritten, "server_cpu_ms"), 2),
        straightforward_value=round(median(textbook, "rate")),
        straightforward_ratio=round(median(textbook, "rate") / baseline, 2),
        straightforward_cpu_ms_per_request=round(median(textbook, "server_cpu_ms"), 2),
    )
    if database:
        database_cpu = median(ours, "database_cpu_ms")
        extra.database_server_cpu_ms_per_request = round(database_cpu, 2)
        extra.bound_with_free_write_ratio = round(
            median(base, "server_cpu_ms") / (median(unwritten, "server_cpu_ms") + database_cpu),
            2,
        )
    record = Record(
        name,
        round(rate),
        "req/s",
        "Flask parse-and-202, same gunicorn",
        round(baseline),
        round(ratio, 2),
        "ratio ≥ 0.6",
        ratio >= 0.6,
        extra,
    )
    return Outcome([record])
