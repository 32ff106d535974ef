"""`make bench-smoke`: every benchmark runs for a moment, so none can rot unnoticed.
(Figures from a smoke run are not measurements; nothing here asserts a timing.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.accept import OTHER_MODELS

pytestmark = [pytest.mark.slow, pytest.mark.mysql]

EXPECTED = {
    "accept",
    "accept-vs-straightforward",
    "accept-vs-hello-world",
    "accept-sqlite",
    "accept-sqlite-vs-hello-world",
    "relay",
    "decoupling-rate",
    "decoupling-rate-vs-sync-naive",
    "decoupling-p99",
    "decoupling-down-errors",
    "cold-start-ingest",
    "cold-start-store",
    "e2e-p50",
    "plan",
    "slow-clients",
}
# Ours under the worker models production did not choose, for information.
EXPECTED |= {f"{name}-{model}" for name in ("accept", "accept-sqlite") for model in OTHER_MODELS}
EXPECTED |= {f"slow-clients-{model}" for model in OTHER_MODELS}


def test_every_benchmark_produces_its_record(tmp_path, mysql_server_url):
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BENCH_MYSQL_URL": mysql_server_url},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    records = {record["name"]: record for record in results["records"]}
    assert set(records) == EXPECTED
    for record in records.values():
        assert record["value"] is not None and record["goal"]
    assert records["decoupling-down-errors"]["value"] == 0
    # The Express peer ran in the same rounds as ours and accepted without an error.
    accept = records["accept"]
    assert accept["peer_value"] > 0 and accept["peer_errors"] == 0
    assert accept["peer_p99_ms"] > 0 and accept["peer_cpu_seconds_per_1000"] > 0
    assert accept["cpu_seconds_per_1000"] > 0
    assert "CPU-seconds per 1,000 accepted" in result.stdout
    assert (tmp_path / "latency.png").stat().st_size > 0
