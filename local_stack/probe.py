"""`python -m local_stack.probe URL`: the health checks the clouds run against the API.

One GET of `/healthz` a period stands in for two checks: the load balancer's target health
check (AWS/ApplicationELB HealthyHostCount: healthy targets per target group, per
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
a 200 within the timeout is healthy) and the GCP uptime check
(monitoring.googleapis.com/uptime_check/check_passed, a GAUGE BOOL per check, per
https://cloud.google.com/monitoring/api/metrics_gcp#gcp-monitoring). Each result is written
as a sample line that local_stack.signals reads (the prober is the platform, not the API).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.request
from datetime import UTC, datetime

from local_stack.signals import LOCAL_RESOURCE, SAMPLE_EVENT

UPTIME_CHECK_ID = "api-healthz"
# A public uptime check runs from at least three checker locations, each its own series
# (https://cloud.google.com/monitoring/uptime-checks/introduction); locally all three see
# the same API, so they agree.
CHECKER_LOCATIONS = ("usa-virginia", "eur-belgium", "apac-singapore")


def healthy(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 — loopback
            return response.status == 200
    except OSError:
        return False


def sample_lines(passed: bool, host: str, now: datetime) -> list[dict]:
    common = {"event": SAMPLE_EVENT, "time": now.isoformat()}
    return [
        common | {"namespace": "AWS/ApplicationELB", "metric": "HealthyHostCount",
                  "labels": {"LoadBalancer": LOCAL_RESOURCE, "TargetGroup": LOCAL_RESOURCE},
                  "value": int(passed), "unit": "Count"},
    ] + [
        common | {"metric": "monitoring.googleapis.com/uptime_check/check_passed",
                  "labels": {"resource.type": "uptime_url", "resource.labels.host": host,
                             "metric.labels.check_id": UPTIME_CHECK_ID,
                             "metric.labels.checker_location": location},
                  "value": int(passed), "unit": "1"}
        for location in CHECKER_LOCATIONS
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.probe", description=__doc__)
    parser.add_argument("url", help="the API's base URL")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds a check may take")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    host = args.url.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    while True:
        passed = healthy(args.url.rstrip("/") + "/healthz", args.timeout)
        for line in sample_lines(passed, host, datetime.now(UTC)):
            print(json.dumps(line), flush=True)
        if stopped.wait(args.interval):
            return 0


if __name__ == "__main__":
    sys.exit(main())
