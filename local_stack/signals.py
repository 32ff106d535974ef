"""The signals the clouds consume, read back from the local stack's process logs.

On AWS the CloudWatch agent ships the API's and the relay's stdout, and CloudWatch turns
each Embedded Metric Format line into metric data points; the load balancer counts requests
and 5xx and health-checks the targets (locally local_stack.balancer writes its counts as
EMF, local_stack.probe its health checks as samples). On GCP Cloud Logging stores each JSON
line a function writes as a LogEntry (its `jsonPayload`), log-based metrics count the
entries a filter selects, and Pub/Sub reports its subscriptions' backlog. Here each process
writes to `<logs>/<name>.log` (local_stack.stack), and this module turns those files back
into the same two things: metric `Point`s and log `Entry`s. The live view, the alarm
evaluator and the metric contract test all read them, so none of them relies on a private
counter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Where a stand-in for a cloud platform's own metrics writes its samples (the Pub/Sub
# emulator's subscription gauges, the prober's health checks), as one JSON object a line.
SAMPLE_EVENT = "monitoring.sample"
REQUEST_EVENT = "run.request"  # local_stack.function_host: Cloud Run's request log
# Every value of a dimension the template takes from a resource attribute (Fn::GetAtt / Ref)
# is this string locally: each such resource has one local stand-in.
LOCAL_RESOURCE = "local"

FUNCTIONS = ("ingest", "store")


@dataclass(frozen=True)
class Point:
    """One metric data point: CloudWatch (namespace, name, dimensions) or Cloud Monitoring
    (namespace "", name = metric type, dimensions = `resource.labels.*`, `metric.labels.*`
    and `resource.type`)."""

    time: float  # epoch seconds
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    value: float
    unit: str = "None"

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.dimensions)


@dataclass(frozen=True)
class Entry:
    """The parts of a Cloud Logging LogEntry our filters read."""

    time: float
    process: str
    severity: str
    resource: Mapping[str, Any]  # {"type": ..., "labels": {...}}
    payload: Mapping[str, Any]  # jsonPayload

    def field(self, path: str) -> Any:
        """The value at a filter's field path (`jsonPayload.event`, `resource.labels.x`,
        `severity`), or None where the entry has no such field."""
        head, _, rest = path.partition(".")
        root: Any = {
            "jsonPayload": self.payload,
            "resource": self.resource,
            "severity": self.severity,
        }.get(head)
        for part in rest.split(".") if rest else ():
            if not isinstance(root, Mapping):
                return None
            root = root.get(part)
        return root


def _dims(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, str(value)) for key, value in values.items()))


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def emf_points(document: Mapping[str, Any]) -> list[Point]:
    """Every data point one EMF document defines: one per metric per dimension set.
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
    (Timestamp in ms; each dimension set lists member names whose values are top-level
    members; a metric's value is its top-level member, a number or an array of numbers)."""
    meta = document["_aws"]
    when = meta["Timestamp"] / 1000
    points = []
    for directive in meta["CloudWatchMetrics"]:
        for dimension_set in directive.get("Dimensions") or [[]]:
            dims = _dims({key: document[key] for key in dimension_set})
            for metric in directive["Metrics"]:
                raw = document.get(metric["Name"])
                values = raw if isinstance(raw, list) else [raw]
                points += [
                    Point(when, directive["Namespace"], metric["Name"], dims, float(value),
                          metric.get("Unit", "None"))
                    for value in values
                    if isinstance(value, int | float)
                ]  # fmt: skip
    return points


def run_request_points(line: Mapping[str, Any], resource: Mapping[str, Any]) -> list[Point]:
    """Cloud Run's two request metrics for one request log line (local_stack.function_host):
    request_count (DELTA INT64) and request_latencies (DELTA DISTRIBUTION, ms; locally one
    sample per request)."""
    request = line["httpRequest"]
    status = int(request["status"])
    labels = {f"resource.labels.{k}": v for k, v in resource["labels"].items()}
    labels |= {
        "resource.type": resource["type"],
        "metric.labels.response_code": str(status),
        "metric.labels.response_code_class": f"{status // 100}xx",
    }
    dims = _dims(labels)
    latency_ms = float(str(request["latency"]).removesuffix("s")) * 1000
    when = _epoch(line["time"])
    return [
        Point(when, "", "run.googleapis.com/request_count", dims, 1.0, "1"),
        Point(when, "", "run.googleapis.com/request_latencies", dims, latency_ms, "ms"),
    ]


def sample_points(line: Mapping[str, Any]) -> list[Point]:
    """A platform stand-in's sample: {"event": SAMPLE_EVENT, "time", "namespace", "metric",
    "labels", "value", "unit"}."""
    return [
        Point(_epoch(line["time"]), line.get("namespace", ""), line["metric"],
              _dims(line.get("labels") or {}), float(line["value"]), line.get("unit", "None"))
    ]  # fmt: skip


@dataclass
class LogFile:
    """One process's log, read incrementally: only whole lines, each once."""

    path: Path
    offset: int = 0
    partial: bytes = b""

    def new_lines(self) -> list[bytes]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        return lines


@dataclass
class Signals:
    """Every point and entry the local stack's processes have written so far.
    `service_prefix` names the functions as Cloud Run services (`<prefix>-ingest`)."""

    logs: Path
    service_prefix: str = "skybridge-local"
    points: list[Point] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    _files: dict[str, LogFile] = field(default_factory=dict)

    def poll(self) -> tuple[list[Point], list[Entry]]:
        """Read what was written since the last poll; returns only the new signals."""
        points: list[Point] = []
        entries: list[Entry] = []
        for path in sorted(self.logs.glob("*.log")):
            log = self._files.setdefault(path.stem, LogFile(path))
            for raw in log.new_lines():
                new_points, entry = self.parse(path.stem, raw)
                points += new_points
                if entry is not None:
                    entries.append(entry)
        self.points += points
        self.entries += entries
        return points, entries

    def parse(self, process: str, raw: bytes) -> tuple[list[Point], Entry | None]:
        try:
            line = json.loads(raw)
        except ValueError:
            return [], None  # a process's plain-text output (a banner, a traceback)
        if not isinstance(line, dict):
            return [], None
        if "_aws" in line:
            return emf_points(line), None
        event = line.get("event")
        if event == SAMPLE_EVENT:
            return sample_points(line), None
        # A line without a time is stamped when read, as the CloudWatch agent stamps a log
        # line when no timestamp_format is configured (gunicorn's access log has none).
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details.html
        when = _epoch(line["time"]) if isinstance(line.get("time"), str) else time.time()
        resource = self.resource(process)
        if event == REQUEST_EVENT and process in FUNCTIONS:
            return run_request_points(line, resource), None  # Cloud Run's, not the function's
        return [], Entry(when, process, str(line.get("severity", "DEFAULT")), resource, line)

    def resource(self, process: str) -> dict[str, Any]:
        """The monitored resource Cloud Logging would attach to this process's entries."""
        if process in FUNCTIONS:
            # A gen2 function is a Cloud Run service named after the function.
            # https://cloud.google.com/functions/docs/monitoring/logging#viewing_runtime_logs
            return {
                "type": "cloud_run_revision",
                "labels": {"service_name": f"{self.service_prefix}-{process}"},
            }
        return {"type": "local", "labels": {"process": process}}


def select(points: Iterable[Point], namespace: str, name: str) -> list[Point]:
    return [p for p in points if p.namespace == namespace and p.name == name]
