"""accept, accept-sqlite: our API's accept path side by side with the seed's Node.js design
(the Express peer, MySQL only), the straightforward Flask + SQLAlchemy build, the Flask
parse-and-202 ceiling, and our API without its write."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import peers
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
from runtime import commands

Server = tuple[Child, str]


@dataclass
class AcceptExtra(Extra):
    # Throughput on 2 shared cores is CPU-bound, so CPU per request explains every ratio:
    # milliseconds of CPU per request are CPU-seconds per 1,000 accepted submissions.
    p99_ms: float
    errors: int
    cpu_seconds_per_1000: float
    database_cpu_seconds_per_1000: float | None
    hello_world_value: float
    hello_world_ratio: float
    hello_world_cpu_seconds_per_1000: float
    without_write_value: float
    without_write_ratio: float  # over hello-world: the ceiling of that ratio
    without_write_cpu_seconds_per_1000: float
    straightforward_value: float
    straightforward_p99_ms: float
    straightforward_cpu_seconds_per_1000: float
    peer_value: float | None = None
    peer_p99_ms: float | None = None
    peer_errors: int | None = None
    peer_cpu_seconds_per_1000: float | None = None
    peer_database_cpu_seconds_per_1000: float | None = None
    # model → value, p99_ms, cpu_seconds_per_1000 of our API under that worker model
    models: dict[str, dict] | None = None


def over(value: float, baseline: float) -> float:
    """A ratio; 0 when the baseline answered nothing (a smoke run on a busy machine)."""
    return value / baseline if baseline else 0.0


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
    starts: list[Callable[[], Server]], body: Path, cfg: Settings, database: int | None = None
) -> list[list[dict]]:
    """Start every server, then alternate runs against each: one list of runs per server."""
    servers: list[Server] = []
    try:
        for start in starts:
            servers.append(start())
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


# The worker models production did not choose (runtime.commands runs gevent workers), our
# unchanged app under each in the same rounds, for information: bench/README.md.
OTHER_MODELS = {
    "sync": ("--worker-class", "sync"),  # the previous production line: closes every connection
    "gthread": ("--worker-class", "gthread", "--threads", "8"),
}


def gunicorn(
    name: str, app: str, env: dict[str, str], cfg: Settings, logs: Path, options=()
) -> Callable[[], Server]:
    def start() -> Server:
        return serve(f"{name}-{uuid.uuid4().hex[:4]}", app, env, logs, cfg.workers, options)

    return start


def migrated(database_url: str) -> None:
    """The schema in place before any server starts (the peer does not migrate)."""
    env = os.environ | api_env(database_url)
    subprocess.run(commands.migrate_argv(), env=env, check=True, capture_output=True)


def bench_accept(name: str, database_url: str, body: Path, cfg: Settings, logs: Path) -> Outcome:
    on_mysql = database_url.startswith("mysql")
    database = database_server_pid() if on_mysql else None
    migrated(database_url)
    env = api_env(database_url)
    starts = [
        gunicorn("subject", commands.APP, env, cfg, logs),
        gunicorn("straightforward", "bench.apps:straightforward_app()", env, cfg, logs),
        gunicorn("hello-world", "bench.apps:baseline_app()", {}, cfg, logs),
        gunicorn("without-write", "bench.apps:api_without_write_app()", env, cfg, logs),
    ]
    for model, options in OTHER_MODELS.items():
        starts.append(gunicorn(f"subject-{model}", commands.APP, env, cfg, logs, options))
    if on_mysql:
        name_ = f"peer-express-{uuid.uuid4().hex[:4]}"
        starts.append(lambda: peers.express(name_, database_url, cfg.workers, logs))
    ours, textbook, hello, unwritten, *others = side_by_side(starts, body, cfg, database)
    by_model, peer = others[: len(OTHER_MODELS)], others[len(OTHER_MODELS) :]

    def cpu(runs: list[dict], key: str = "server_cpu_ms") -> float:
        return round(median(runs, key), 2)

    rate, hello_rate = median(ours, "rate"), median(hello, "rate")
    extra = AcceptExtra(
        p99_ms=round(median(ours, "p99_ms"), 1),
        errors=sum(run["errors"] for run in ours),
        cpu_seconds_per_1000=cpu(ours),
        database_cpu_seconds_per_1000=cpu(ours, "database_cpu_ms") if database else None,
        hello_world_value=round(hello_rate),
        hello_world_ratio=round(over(rate, hello_rate), 2),
        hello_world_cpu_seconds_per_1000=cpu(hello),
        without_write_value=round(median(unwritten, "rate")),
        without_write_ratio=round(over(median(unwritten, "rate"), hello_rate), 2),
        without_write_cpu_seconds_per_1000=cpu(unwritten),
        straightforward_value=round(median(textbook, "rate")),
        straightforward_p99_ms=round(median(textbook, "p99_ms"), 1),
        straightforward_cpu_seconds_per_1000=cpu(textbook),
    )
    textbook_ratio = over(rate, median(textbook, "rate"))
    records = []
    if peer:
        (runs,) = peer
        extra.peer_value = round(median(runs, "rate"))
        extra.peer_p99_ms = round(median(runs, "p99_ms"), 1)
        extra.peer_errors = sum(run["errors"] for run in runs)
        extra.peer_cpu_seconds_per_1000 = cpu(runs)
        extra.peer_database_cpu_seconds_per_1000 = cpu(runs, "database_cpu_ms")
        ratio = over(rate, median(runs, "rate"))
        records.append(
            Record(
                name,
                round(rate),
                "req/s",
                f"Express 5 + mysql2, Node cluster of {cfg.workers} (the seed's design)",
                extra.peer_value,
                round(ratio, 2),
                "≥ 1.0x, p99 ≤ the peer's",
                ratio >= 1.0 and extra.p99_ms <= extra.peer_p99_ms and not extra.errors,
                extra,
            )
        )
    records.append(
        Record(
            f"{name}-vs-straightforward" if peer else name,
            round(rate),
            "req/s",
            "straightforward Flask + SQLAlchemy, same gunicorn",
            extra.straightforward_value,
            round(textbook_ratio, 2),
            "≥ 2x",
            textbook_ratio >= 2.0 and not extra.errors,
            None if peer else extra,
        )
    )
    extra.models = {}
    production = commands.api_argv("127.0.0.1:0", 1)
    chosen = production[production.index("--worker-class") + 1].rsplit(".", 1)[-1]
    for model, runs in zip(OTHER_MODELS, by_model, strict=True):
        figures = {
            "value": round(median(runs, "rate")),
            "p99_ms": round(median(runs, "p99_ms"), 1),
            "cpu_seconds_per_1000": cpu(runs),
            "database_cpu_seconds_per_1000": cpu(runs, "database_cpu_ms") if database else None,
        }
        extra.models[model] = figures
        records.append(
            Record(
                f"{name}-{model}",
                figures["value"],
                "req/s",
                f"ours, production's {chosen} workers, same rounds",
                round(rate),
                round(over(figures["value"], rate), 2),
                f"information: ours under {' '.join(OTHER_MODELS[model][1:])}; "
                f"p99 {figures['p99_ms']} ms (production {extra.p99_ms} ms), "
                f"CPU {figures['cpu_seconds_per_1000']} ms/request",
                None,
            )
        )
    # No longer a goal (bench/README.md: with the database on the same cores, a write
    # cannot cost as little as no write): the ceiling, shown as information.
    records.append(
        Record(
            f"{name}-vs-hello-world",
            round(rate),
            "req/s",
            "Flask parse-and-202, no database, same gunicorn",
            extra.hello_world_value,
            extra.hello_world_ratio,
            f"information (without the write: {extra.without_write_ratio})",
            None,
        )
    )
    return Outcome(records, notes=[cost(name, extra)])


def cost(name: str, extra: AcceptExtra) -> str:
    """CPU-seconds per 1,000 accepted submissions, the figure docs/deploy.md sizes with."""

    def side(label: str, server: float | None, database: float | None) -> str:
        return f"{label} {server}" + (f" + database {database}" if database is not None else "")

    parts = [side("ours", extra.cpu_seconds_per_1000, extra.database_cpu_seconds_per_1000)]
    if extra.peer_cpu_seconds_per_1000 is not None:
        peer_database = extra.peer_database_cpu_seconds_per_1000
        parts.append(side("Express peer", extra.peer_cpu_seconds_per_1000, peer_database))
    for model, figures in (extra.models or {}).items():
        parts.append(f"ours under {model} {figures['cpu_seconds_per_1000']}")
    parts.append(f"straightforward {extra.straightforward_cpu_seconds_per_1000}")
    parts.append(f"hello-world {extra.hello_world_cpu_seconds_per_1000}")
    return f"{name}: CPU-seconds per 1,000 accepted: " + "; ".join(parts)
