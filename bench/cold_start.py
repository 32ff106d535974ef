"""cold-start: what each function module adds to an instance's first import."""

from __future__ import annotations

import statistics
import subprocess
import sys

from bench.harness import ROOT, Outcome, Record, Settings


def bench_cold_start(cfg: Settings) -> Outcome:
    # The platform has loaded functions-framework and Flask before it imports main.py, so
    # the clock starts after them: what is timed is what the function module itself adds.
    probe = (
        "import functions_framework, flask, time; t = time.perf_counter(); {imports}; "
        "print((time.perf_counter() - t) * 1000)"
    )
    cases = {
        "ingest": ("import runtime.functions.ingest", "import google.cloud.pubsub_v1"),
        "store": ("import runtime.functions.store", "import google.cloud.storage"),
    }
    records = []
    for name, (module, client) in cases.items():
        lazy: list[float] = []
        eager: list[float] = []
        for _ in range(cfg.cold_runs):
            for imports, into in ((module, lazy), (f"{module}; {client}", eager)):
                out = subprocess.run(
                    [sys.executable, "-c", probe.format(imports=imports)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                into.append(float(out.stdout))
        ms, eager_ms = statistics.median(lazy), statistics.median(eager)
        ratio = ms / eager_ms
        records.append(
            Record(
                f"cold-start-{name}",
                round(ms),
                "ms",
                "same clients imported eagerly",
                round(eager_ms),
                round(ratio, 2),
                "≤ 0.4x and ≤ 200 ms",
                ratio <= 0.4 and ms <= 200,
            )
        )
    return Outcome(records)
