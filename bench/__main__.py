"""`python -m bench [--smoke]`: every benchmark, ratios measured side by side in one run.

Servers run as their own processes, load comes from another (bench/load.py), and each
subject is measured next to its baseline, alternating, so drift on a shared machine hits
both. Writes bench/results.json and bench/latency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.accept import bench_accept
from bench.cold_start import bench_cold_start
from bench.decoupling import bench_decoupling
from bench.e2e import bench_e2e
from bench.harness import HERE, WORKERS, Outcome, Record, Settings, body_file, mysql_database
from bench.load import WRK_HINT, wrk_path
from bench.plan import bench_plan
from bench.plot import plot
from bench.relay import bench_relay
from bench.slow_clients import bench_slow_clients

BENCHMARKS = (
    "accept",
    "accept-sqlite",
    "slow-clients",
    "relay",
    "decoupling",
    "cold-start",
    "e2e",
    "plan",
)
USES_MYSQL = ("accept", "relay")


def table(records: list[Record], smoke: bool) -> Table:
    shown = Table(title="skybridge benchmarks" + (" (smoke: not a measurement)" if smoke else ""))
    for column in ("benchmark", "value", "baseline", "ratio", "goal", "met"):
        shown.add_column(column)
    for r in records:
        base = f"{r.baseline_value} ({r.baseline})" if r.baseline_value is not None else r.baseline
        shown.add_row(
            r.name,
            f"{r.value} {r.unit}",
            base,
            str(r.ratio or "—"),
            r.goal,
            "—" if r.met is None else "[green]yes" if r.met else "[red]no",
        )
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, every benchmark")
    parser.add_argument("--output", type=Path, default=HERE)
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument(
        "--workers",
        type=int,
        help=f"gunicorn workers of the accept benchmarks' servers (default {WORKERS}, as on EC2)",
    )
    args = parser.parse_args(argv)
    cfg = (
        Settings(
            duration=1,
            repeats=1,
            e2e_seconds=1,
            cold_runs=1,
            warmup=0,
            workers=1,
            decoupling_repeats=1,
        )
        if args.smoke
        else Settings(duration=3, repeats=3)
    )
    if args.workers:
        cfg.workers = args.workers
    console = Console(width=140)
    if not wrk_path():
        console.print(f"[yellow]wrk not found: load comes from the Python generator; {WRK_HINT}")
    tmp = Path(tempfile.mkdtemp(prefix="skybridge-bench-"))
    logs = tmp / "logs"
    body = body_file(tmp)
    wanted = set(args.only or BENCHMARKS)
    failed: list[str] = []

    # A database of its own per benchmark that uses MySQL, created only if it runs.
    databases = {name: mysql_database() for name in USES_MYSQL if name in wanted}
    url = {name: database for name, (database, _) in databases.items()}
    steps: dict[str, Callable[[], Outcome]] = {
        "accept": lambda: bench_accept("accept", url["accept"], body, cfg, logs),
        "accept-sqlite": lambda: bench_accept(
            "accept-sqlite", f"sqlite:///{tmp / 'accept.sqlite3'}", body, cfg, logs
        ),
        "slow-clients": lambda: bench_slow_clients(cfg, logs, tmp),
        "relay": lambda: bench_relay(url["relay"], cfg, logs),
        "decoupling": lambda: bench_decoupling(body, cfg, logs, tmp),
        "cold-start": lambda: bench_cold_start(cfg),
        "e2e": lambda: bench_e2e(cfg, tmp),
        "plan": lambda: bench_plan(cfg),
    }
    steps = {name: run for name, run in steps.items() if name in wanted}

    def step(name: str) -> Outcome:
        started = time.monotonic()
        try:
            outcome = steps[name]()
        except Exception:  # noqa: BLE001 — one broken benchmark must not hide the others
            console.print(f"[red]{name} failed:")
            console.print_exception()
            failed.append(name)
            return Outcome([])
        console.print(f"{name}: {time.monotonic() - started:.0f}s")
        return outcome

    outcomes: list[Outcome] = []
    try:
        if args.smoke:
            # Figures that measure nothing, so nothing is lost by running every benchmark at
            # once: the smoke run takes as long as its slowest benchmark.
            with ThreadPoolExecutor(max_workers=len(steps) or 1) as pool:
                outcomes = list(pool.map(step, steps))
        else:
            for name in steps:
                with console.status(f"benchmark {name}…"):
                    outcomes.append(step(name))
    finally:
        for _, drop in databases.values():
            drop()

    records = [record for outcome in outcomes for record in outcome.records]
    console.print(table(records, args.smoke))
    for note in (note for outcome in outcomes for note in outcome.notes):
        console.print(note)
    args.output.mkdir(parents=True, exist_ok=True)
    machine = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "smoke": args.smoke,
        "loader": "wrk" if wrk_path() else "python (bench/load.py)",
        "load_average": os.getloadavg()[0],
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    results = {"machine": machine, "records": [r.as_json() for r in records]}
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(args.output / "latency.png", outcomes)
    console.print(f"wrote {args.output / 'results.json'} and {args.output / 'latency.png'}")
    if failed:
        console.print(f"[red]failed to run: {', '.join(failed)} (logs in {logs})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
