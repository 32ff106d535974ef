"""plan: `gcp_stack plan` with the default parallelism against parallelism 1."""

from __future__ import annotations

import statistics
import time

from bench.harness import ROOT, Outcome, Record, Settings


def bench_plan(cfg: Settings) -> Outcome:
    """`gcp_stack plan` of the deployed stack (nothing to change), in process, against the
    fake control plane adding 50 ms per request; parallelism 8 against parallelism 1."""
    import environments
    from deployment.packaging import build_artifact
    from gcp_stack import stack
    from gcp_stack.api import Api
    from gcp_stack.engine import Engine
    from gcp_stack.resources import Context
    from local_stack.control_plane import ControlPlane

    environment = environments.load("dev")
    artifact = build_artifact(ROOT / "build" / "artifacts")

    def engine(url: str, parallelism: int) -> Engine:
        ctx = Context(
            api=Api(endpoint=url, poll_initial=0.01),
            project=environment.gcp.project,
            region=environment.gcp.region,
            artifact=artifact,
            project_number="424242424242",
            stack=environment.prefix,
        )
        return Engine(stack.build(environment), ctx, parallelism=parallelism)

    with ControlPlane() as plane:
        first = engine(plane.url, 8)
        first.apply(first.plan())
        plane.latency = 0.05 if cfg.repeats > 1 else 0.01
        times: dict[int, list[float]] = {8: [], 1: []}
        for _ in range(max(1, cfg.repeats)):
            for parallelism in (8, 1):
                started = time.perf_counter()
                plan = engine(plane.url, parallelism).plan()
                times[parallelism].append(time.perf_counter() - started)
                if plan.pending:
                    raise RuntimeError(f"plan after deploy is not empty: {plan.summary()}")
    fast, slow = statistics.median(times[8]), statistics.median(times[1])
    record = Record(
        "plan",
        round(fast, 2),
        "s",
        "same plan, parallelism 1",
        round(slow, 2),
        round(fast / slow, 2),
        "<= 0.25x",
        fast / slow <= 0.25,
    )
    return Outcome([record])
