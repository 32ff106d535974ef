"""e2e: a steady 100 submissions/s through the whole local stack, latency read back from
every stored object."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import Extra, Outcome, Record, Settings, cpu_busy, load, process_cpu
from smoke import storage

E2E_RATE = 100.0
E2E_LIGHT_RATE = 25.0  # a reference the machine can sustain with room to spare


@dataclass
class E2eExtra(Extra):
    p99_ms: int
    max_ms: int
    rate_sent_per_s: float
    sent: int
    stored: int
    api_errors: int
    received_to_published_p50_ms: int | None
    published_to_stored_p50_ms: int | None
    machine_cpu_busy: float
    stack_cores: dict[str, float]
    stack_cpu_ms_per_submission: float
    at_25_per_s: dict[str, Any] = field(default_factory=dict)


def stack_cpu(stack: Any) -> dict[str, float]:
    pids = {name: child.process.pid for name, child in stack.children.items() if child.alive}
    if stack.gcs.alive:
        pids["fake-gcs-server"] = stack.gcs.process.pid
    return {name: process_cpu(pid) for name, pid in pids.items()}


def _ms_between(start: str, end: str) -> float:
    parse = datetime.fromisoformat
    return (
        parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))
    ).total_seconds() * 1000


def _phase(stack: Any, tmp: Path, kind: str, rate: float, seconds: float) -> dict:
    """Submissions of one `kind` at a steady `rate`: what was sent, and the CPU each part
    of the stack and the whole machine used meanwhile."""
    body = tmp / f"{kind}.json"
    body.write_text(json.dumps({"type": kind, "data": {"text": "y" * 900}}))
    # Enough connections that a slow answer does not hold the rate back (closed loop).
    paced = Settings(duration=0, repeats=1, connections=16)
    busy_before, total_before = cpu_busy()
    components_before = stack_cpu(stack)
    started = time.monotonic()
    result = load(stack.url("api") + "/v1/submissions", body, paced, rate=rate, duration=seconds)
    elapsed = time.monotonic() - started
    components_after = stack_cpu(stack)
    busy_after, total_after = cpu_busy()
    result["machine_cpu_busy"] = round((busy_after - busy_before) / (total_after - total_before), 2)
    result["stack_cores"] = {
        name: round((components_after[name] - components_before[name]) / elapsed, 2)
        for name in components_after
        if name in components_before
    }
    return result


def _latencies(assets: list[dict], kind: str) -> tuple[list[float], list[float], list[float]]:
    """End to end, received → published, published → stored; in ms, the first sorted."""
    total, relay_leg, push_leg = [], [], []
    for asset in assets:
        if asset["type"] != kind:
            continue
        provenance = asset["provenance"]
        total.append(_ms_between(provenance["aws_received_at"], provenance["stored_at"]))
        if provenance.get("pubsub_publish_time"):
            published = provenance["pubsub_publish_time"]
            relay_leg.append(_ms_between(provenance["aws_received_at"], published))
            push_leg.append(_ms_between(published, provenance["stored_at"]))
    return sorted(total), relay_leg, push_leg


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[round(q * 100) - 1] if len(values) > 1 else 0.0


def bench_e2e(cfg: Settings, tmp: Path) -> Outcome:
    """A steady 100 submissions/s into the whole local stack (SQLite, relay, functions,
    Pub/Sub emulator, fake-gcs-server); latency from the API's received_at to the store
    function's stored_at, read back from every stored object. Before it, for reference,
    the same at 25/s, where the machine is not the limit."""
    from local_stack.stack import LocalStack, Options

    with LocalStack(Options(workdir=tmp / "e2e")) as stack:
        bucket = stack.bucket()
        sent = 0
        if cfg.warmup:
            # Warm-up, not counted: first calls create the Pub/Sub and Storage clients.
            sent += _phase(stack, tmp, "bench.warmup", 20, 1)["requests"]
            storage.wait_for_count(bucket, sent, timeout=30)
            light = _phase(stack, tmp, "bench.e2e-light", E2E_LIGHT_RATE, cfg.e2e_seconds / 2)
            sent += light["requests"]
            storage.wait_for_count(bucket, sent, timeout=60)
        else:  # smoke: the measured phase only
            light = {"requests": 0, "machine_cpu_busy": None, "stack_cores": {}}
        full = _phase(stack, tmp, "bench.e2e", E2E_RATE, cfg.e2e_seconds)
        assets = list(storage.wait_for_count(bucket, sent + full["requests"], 60).values())
    latencies, relay_leg, push_leg = _latencies(assets, "bench.e2e")
    light_latencies, _, _ = _latencies(assets, "bench.e2e-light")
    p50, p99 = quantile(latencies, 0.5), quantile(latencies, 0.99)
    extra = E2eExtra(
        p99_ms=round(p99),
        max_ms=round(latencies[-1]),
        rate_sent_per_s=round(full["rate"], 1),
        sent=full["requests"],
        stored=len(latencies),
        api_errors=full["errors"],
        received_to_published_p50_ms=round(statistics.median(relay_leg)) if relay_leg else None,
        published_to_stored_p50_ms=round(statistics.median(push_leg)) if push_leg else None,
        machine_cpu_busy=full["machine_cpu_busy"],
        stack_cores=full["stack_cores"],
        stack_cpu_ms_per_submission=round(
            sum(full["stack_cores"].values()) * 1000 / max(full["rate"], 1e-9), 1
        ),
        at_25_per_s={
            "p50_ms": round(quantile(light_latencies, 0.5)),
            "p99_ms": round(quantile(light_latencies, 0.99)),
            "max_ms": round(light_latencies[-1]) if light_latencies else None,
            "sent": light["requests"],
            "stored": len(light_latencies),
            "machine_cpu_busy": light["machine_cpu_busy"],
            "stack_cores": light["stack_cores"],
        },
    )
    record = Record(
        "e2e-p50",
        round(p50),
        "ms",
        "—",
        None,
        None,
        "p50 ≤ 250 ms, p99 ≤ 1 s",
        p50 <= 250 and p99 <= 1000 and len(latencies) == full["requests"],
        extra,
    )
    histograms = {f"{E2E_RATE:.0f}/s": latencies}
    if light_latencies:
        histograms[f"{E2E_LIGHT_RATE:.0f}/s"] = light_latencies
    return Outcome([record], histograms=histograms)
