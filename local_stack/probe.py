"""`python -m local_stack.probe URL`: the health checks the clouds run against the API.

Two independent checkers, as on the clouds, each result written as a sample line that
local_stack.signals reads (the prober is the platform, not the API):

- the load balancer's target health check (AWS/ApplicationELB HealthyHostCount and
  UnHealthyHostCount, gauges of the target group's state, per
  https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html):
  GET /livez (the template's HealthCheckPath) every interval; a 200 within the timeout
  passes; a registered target is healthy after its first pass, unhealthy after
  UNHEALTHY_THRESHOLD consecutive failures, and healthy again after HEALTHY_THRESHOLD
  consecutive passes (the ALB's defaults, which the template keeps). The gauges are
  written every interval whatever a slow check does, as the ALB reports them each minute;
- the GCP uptime check (monitoring.googleapis.com/uptime_check/check_passed, a GAUGE BOOL
  per check and checker location, per https://cloud.google.com/monitoring/api/metrics_gcp):
  GET /healthz from each of CHECKER_LOCATIONS in turn, each location its own request and
  its own series, as Google's checkers run independently.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.request
from datetime import UTC, datetime
from typing import Any

from local_stack.signals import LOCAL_RESOURCE, SAMPLE_EVENT

UPTIME_CHECK_ID = "api-healthz"
# A public uptime check runs from at least three checker locations
# (https://cloud.google.com/monitoring/uptime-checks/introduction).
CHECKER_LOCATIONS = ("usa-virginia", "eur-belgium", "apac-singapore")
HEALTHY_THRESHOLD, UNHEALTHY_THRESHOLD = 5, 2  # HealthyThresholdCount, UnhealthyThresholdCount
STATE_EVENT = "probe.target_state"  # logged on each change (the stack waits for "healthy")


def healthy(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 — loopback
            return response.status == 200
    except OSError:
        return False


class TargetHealth:
    """One target's state under the ALB's thresholds."""

    def __init__(self) -> None:
        self.state = "initial"  # not yet healthy: it must pass one check first
        self._passes = self._failures = 0

    def record(self, passed: bool) -> None:
        self._passes, self._failures = (self._passes + 1, 0) if passed else (0, self._failures + 1)
        if self.state == "initial" and passed:
            self.state = "healthy"
        elif self.state == "healthy" and self._failures >= UNHEALTHY_THRESHOLD:
            self.state = "unhealthy"
        elif self.state == "unhealthy" and self._passes >= HEALTHY_THRESHOLD:
            self.state = "healthy"

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


def _sample(now: datetime, **fields: Any) -> dict[str, Any]:
    return {"event": SAMPLE_EVENT, "time": now.isoformat()} | fields


def target_lines(target: TargetHealth, now: datetime) -> list[dict[str, Any]]:
    labels = {"LoadBalancer": LOCAL_RESOURCE, "TargetGroup": LOCAL_RESOURCE}
    return [
        _sample(now, namespace="AWS/ApplicationELB", metric=name, labels=labels,
                value=value, unit="Count")
        for name, value in (("HealthyHostCount", int(target.healthy)),
                            ("UnHealthyHostCount", int(target.state == "unhealthy")))
    ]  # fmt: skip


def uptime_line(passed: bool, host: str, location: str, now: datetime) -> dict[str, Any]:
    labels = {"resource.type": "uptime_url", "resource.labels.host": host,
              "metric.labels.check_id": UPTIME_CHECK_ID,
              "metric.labels.checker_location": location}  # fmt: skip
    return _sample(now, metric="monitoring.googleapis.com/uptime_check/check_passed",
                   labels=labels, value=int(passed), unit="1")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.probe", description=__doc__)
    parser.add_argument("url", help="the API's base URL")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds a check may take")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    base = args.url.rstrip("/")
    host = base.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    lock = threading.Lock()

    def write(lines: list[dict[str, Any]]) -> None:
        with lock:
            for line in lines:
                print(json.dumps(line), flush=True)

    target = TargetHealth()

    def health_checks() -> None:
        while not stopped.is_set():
            before = target.state
            target.record(healthy(base + "/livez", args.timeout))
            if target.state != before:
                write([{"event": STATE_EVENT, "time": datetime.now(UTC).isoformat(),
                        "state": target.state}])  # fmt: skip
            stopped.wait(args.interval)

    def uptime_checks() -> None:
        turn = 0
        while not stopped.is_set():
            location = CHECKER_LOCATIONS[turn % len(CHECKER_LOCATIONS)]
            passed = healthy(base + "/healthz", args.timeout)
            write([uptime_line(passed, host, location, datetime.now(UTC))])
            turn += 1
            stopped.wait(args.interval)

    for work in (health_checks, uptime_checks):
        threading.Thread(target=work, daemon=True).start()
    while not stopped.wait(args.interval):
        write(target_lines(target, datetime.now(UTC)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
