"""Every CloudWatch alarm and GCP alert policy, evaluated locally over the emitted signals.

A `Rule` is one alarm (from the synthesized CloudFormation template) or one alert policy
condition (from gcp_stack's desired state), with its own statistic or aligner, period,
evaluation periods, comparison, threshold and missing-data treatment. `state_at` evaluates
it the way its cloud does:

- CloudWatch: the statistic over each period's data points; ALARM when at least
  DatapointsToAlarm of the last EvaluationPeriods periods breach; missing periods are
  treated per TreatMissingData (missing, notBreaching, breaching, ignore).
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html
- Cloud Monitoring: each time series aligned over a sliding alignment period with the
  per-series aligner (then the cross-series reducer, if any); the condition is met when the
  aligned value violates the threshold for `duration` (one aligned window when it is 0s);
  a series with no data in a window does not violate (EVALUATION_MISSING_DATA_INACTIVE).
  https://cloud.google.com/monitoring/alerts/concepts-indepth

`scale` compresses time for tests and the demo: periods and durations are divided by it,
and so are thresholds on ages (an age grows `scale` times faster in compressed time);
counts per period are not (the same rate, seen over a shorter period).
"""

from __future__ import annotations

import bisect
import math
import operator
import re
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from local_stack.filters import compile_filter
from local_stack.metric_kinds import LOG_METRIC_PREFIX, descriptor
from local_stack.signals import Entry, Point

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
AGE_METRICS = {
    "OutboxOldestAgeSeconds",
    "UnconfirmedOldestAgeSeconds",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
    "COMPARISON_GT": operator.gt,
    "COMPARISON_GE": operator.ge,
    "COMPARISON_LT": operator.lt,
    "COMPARISON_LE": operator.le,
    "COMPARISON_EQ": operator.eq,
    "COMPARISON_NE": operator.ne,
}


def _seconds(duration: str | int | float) -> float:
    return float(str(duration).removesuffix("s") or 0)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, as CloudWatch's pNN over raw values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def statistic(name: str, values: list[float], period: float) -> float:
    """A CloudWatch statistic or a Cloud Monitoring aligner/reducer over one window."""
    if name in ("Sum", "ALIGN_SUM", "ALIGN_DELTA", "REDUCE_SUM"):
        return sum(values)
    if name in ("Maximum", "ALIGN_MAX", "REDUCE_MAX"):
        return max(values)
    if name in ("Minimum", "ALIGN_MIN", "REDUCE_MIN"):
        return min(values)
    if name in ("Average", "ALIGN_MEAN", "REDUCE_MEAN"):
        return statistics.fmean(values)
    if name in ("SampleCount", "ALIGN_COUNT", "REDUCE_COUNT"):
        return float(len(values))
    if name == "ALIGN_RATE":
        return sum(values) / period
    if name == "ALIGN_NEXT_OLDER":
        return values[-1]
    if name in ("ALIGN_FRACTION_TRUE", "REDUCE_FRACTION_TRUE"):
        return sum(1 for v in values if v) / len(values)
    if name in ("ALIGN_COUNT_TRUE", "REDUCE_COUNT_TRUE"):
        return float(sum(1 for v in values if v))
    if name in ("ALIGN_COUNT_FALSE", "REDUCE_COUNT_FALSE"):
        return float(sum(1 for v in values if not v))
    for prefix in ("p", "ALIGN_PERCENTILE_", "REDUCE_PERCENTILE_"):
        if name.startswith(prefix) and name[len(prefix) :].replace(".", "").isdigit():
            return percentile(values, float(name[len(prefix) :]))
    raise ValueError(f"statistic {name} is not implemented locally")


@dataclass(frozen=True)
class Rule:
    cloud: str  # "aws" or "gcp"
    name: str
    metric: str  # "Namespace/MetricName" or a Google metric type
    selects: Callable[[Point], bool]
    statistic: str  # CloudWatch statistic, or the per-series aligner
    period: float
    evaluation_periods: int
    datapoints_to_alarm: int
    comparison: str
    threshold: float
    missing: str = "missing"  # CloudWatch TreatMissingData; GCP: inactive
    reducer: str = "REDUCE_NONE"
    group_by: tuple[str, ...] = ()
    kind: str = ""  # GCP metric kind and value type (local_stack.metric_kinds)
    value_type: str = ""

    def scaled(self, scale: float) -> tuple[float, float]:
        """(period, threshold) in compressed time."""
        age = self.metric.rsplit("/", 1)[-1] in AGE_METRICS or self.metric in AGE_METRICS
        return self.period / scale, self.threshold / scale if age else self.threshold

    def select(self, points: Iterable[Point]) -> list[Point]:
        """This rule's points, in time order (evaluate many instants over one selection)."""
        return sorted((p for p in points if self.selects(p)), key=lambda p: p.time)

    def windows(self, chosen: list[Point], end: float, scale: float) -> list[float | None]:
        """The aligned value of each of the last `evaluation_periods` windows before `end`
        over this rule's points in time order (None: no data in that window)."""
        period, threshold = self.scaled(scale)
        times = [p.time for p in chosen]
        values: list[float | None] = []
        for index in range(self.evaluation_periods, 0, -1):
            start, stop = end - index * period, end - (index - 1) * period
            inside = chosen[bisect.bisect_left(times, start) : bisect.bisect_left(times, stop)]
            values.append(self._window(inside, period, threshold))
        return values

    def _window(self, points: list[Point], period: float, threshold: float) -> float | None:
        if not points:
            return None
        if self.cloud == "aws":
            return statistic(self.statistic, [p.value for p in points], period)
        # Each time series (one full label set) is aligned on its own; a cross-series
        # reducer then combines the aligned series of each group_by group into one.
        series: dict[tuple, list[float]] = {}
        for point in points:
            series.setdefault(point.dimensions, []).append(point.value)
        if self.kind == "DELTA" and self.value_type != "DISTRIBUTION":
            # Google writes a DELTA point per sampling interval (60 s, the alignment period
            # here) holding the interval's count; locally each request is its own point.
            series = {key: [sum(values)] for key, values in series.items()}
        aligned = {key: statistic(self.statistic, values, period)
                   for key, values in series.items()}  # fmt: skip
        if self.reducer != "REDUCE_NONE":
            groups: dict[tuple, list[float]] = {}
            for key, value in aligned.items():
                groups.setdefault(self._group_key(dict(key)), []).append(value)
            aligned = {key: statistic(self.reducer, values, period)
                       for key, values in groups.items()}  # fmt: skip
        # Each remaining series is its own condition; the worst one decides.
        compare = COMPARISONS[self.comparison]
        violating = [v for v in aligned.values() if compare(v, threshold)]
        return (violating or list(aligned.values()))[0]

    def _group_key(self, labels: Mapping[str, str]) -> tuple:
        """The group of a series under groupByFields: each field's value, where a field
        ending in `.*` (`resource.label.*`) stands for every label under it."""
        key: list[tuple[str, str | None]] = []
        for wanted in self.group_by:
            path = wanted.replace(".label.", ".labels.")
            if path.endswith(".*"):
                stem = path[:-1]
                key += sorted((k, v) for k, v in labels.items() if k.startswith(stem))
            else:
                key.append((path, labels.get(path)))
        return tuple(key)

    def state_at(
        self, points: list[Point], end: float, scale: float = 1.0, selected: bool = False
    ) -> str:
        """OK, ALARM or INSUFFICIENT_DATA at `end`; `selected`: the points are already
        this rule's, in time order (Rule.select)."""
        _, threshold = self.scaled(scale)
        compare = COMPARISONS[self.comparison]
        values = self.windows(points if selected else self.select(points), end, scale)
        if self.cloud == "gcp":
            met = all(v is not None and compare(v, threshold) for v in values)
            return ALARM if met else OK
        if all(v is None for v in values):
            return {"breaching": ALARM, "notBreaching": OK}.get(self.missing, INSUFFICIENT)
        substitute = {"breaching": True, "notBreaching": False}.get(self.missing)
        breaching = sum(
            (substitute or False) if v is None else compare(v, threshold) for v in values
        )
        return ALARM if breaching >= self.datapoints_to_alarm else OK

    def timeline(
        self, points: list[Point], start: float, end: float, scale: float = 1.0
    ) -> list[tuple[float, str]]:
        """The rule's state at each evaluation from start to end: a CloudWatch alarm is
        evaluated once a period; a Cloud Monitoring condition about once a minute, over a
        look-back window of its alignment period (which may be longer, e.g. 1200 s)."""
        period, _ = self.scaled(scale)
        step = period if self.cloud == "aws" else min(period, 60 / scale)
        steps = max(0, int((end - start) / step))
        chosen = self.select(points)
        return [(start + k * step, self.state_at(chosen, start + k * step, scale, True))
                for k in range(1, steps + 1)]  # fmt: skip


# -- CloudWatch ---------------------------------------------------------------------------


def dimension_matcher(dimensions: Iterable[Mapping[str, Any]]) -> Callable[[Point], bool]:
    """A CloudWatch metric is its exact set of dimensions: names equal, and each literal
    value equal. A value the template takes from a resource (Ref, Fn::GetAtt) is that
    resource's, which locally is its one stand-in: any value matches."""
    wanted = {d["Name"]: d["Value"] for d in dimensions}

    def matches(point: Point) -> bool:
        labels = point.labels
        return labels.keys() == wanted.keys() and all(
            not isinstance(value, str) or labels[name] == value for name, value in wanted.items()
        )

    return matches


def cloudwatch_rules(template: Mapping[str, Any]) -> list[Rule]:
    """One Rule per AWS::CloudWatch::Alarm on a single metric in a synthesized template."""
    rules = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        if "MetricName" not in props:
            raise ValueError(f"{logical_id}: metric-math alarms are not evaluated locally")
        namespace, name = props["Namespace"], props["MetricName"]
        by_dims = dimension_matcher(props.get("Dimensions", []))
        periods = int(props["EvaluationPeriods"])
        rules.append(
            Rule(
                cloud="aws",
                name=logical_id,
                metric=f"{namespace}/{name}",
                selects=lambda p, ns=namespace, n=name, dims=by_dims: (
                    p.namespace == ns and p.name == n and dims(p)
                ),
                statistic=props.get("ExtendedStatistic") or props["Statistic"],
                period=float(props["Period"]),
                evaluation_periods=periods,
                datapoints_to_alarm=int(props.get("DatapointsToAlarm", periods)),
                comparison=props["ComparisonOperator"],
                threshold=float(props["Threshold"]),
                missing=props.get("TreatMissingData", "missing"),
            )
        )
    return rules


# -- Cloud Monitoring ---------------------------------------------------------------------


def point_lookup(point: Point) -> Callable[[str], Any]:
    """A Monitoring filter's view of a point: metric.type, resource.type, *.labels.*."""
    labels = point.labels

    def lookup(path: str) -> Any:
        if path == "metric.type":
            return point.name
        return labels.get(path)

    return lookup


def log_metric_points(entries: Iterable[Entry], log_metrics: Mapping[str, str]) -> list[Point]:
    """What counter log-based metrics record: one point of 1 per matching entry, on the
    entry's monitored resource. https://cloud.google.com/logging/docs/logs-based-metrics"""
    compiled = {name: compile_filter(text) for name, text in log_metrics.items()}
    points = []
    for entry in entries:
        for name, predicate in compiled.items():
            if predicate(entry.field):
                labels = {f"resource.labels.{k}": v for k, v in entry.resource["labels"].items()}
                labels["resource.type"] = entry.resource["type"]
                points.append(
                    Point(entry.time, "", LOG_METRIC_PREFIX + name,
                          tuple(sorted(labels.items())), 1.0, "1")
                )  # fmt: skip
    return points


def metric_type(filter_text: str) -> str:
    """The metric type a Monitoring filter selects (every filter names exactly one)."""
    match = re.search(r'metric\.type\s*=\s*"([^"]+)"', filter_text)
    if not match:
        raise ValueError(f"the filter names no metric.type: {filter_text}")
    return match.group(1)


def gcp_rules(policies: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """One Rule per threshold condition of each alert policy spec (displayName → spec)."""
    rules = []
    for policy in policies:
        for condition in policy["conditions"]:
            threshold = condition["conditionThreshold"]
            aggregation = (threshold.get("aggregations") or [{}])[0]
            predicate = compile_filter(threshold["filter"])
            metric = metric_type(threshold["filter"])
            known = descriptor(metric)
            period = _seconds(aggregation.get("alignmentPeriod", "60s"))
            duration = _seconds(threshold.get("duration", "0s"))
            rules.append(
                Rule(
                    cloud="gcp",
                    name=condition["displayName"],
                    metric=metric,
                    selects=lambda p, f=predicate: f(point_lookup(p)),
                    statistic=aggregation.get("perSeriesAligner", "ALIGN_NONE"),
                    period=period,
                    evaluation_periods=max(1, round(duration / period)),
                    datapoints_to_alarm=max(1, round(duration / period)),
                    comparison=threshold["comparison"],
                    threshold=float(threshold.get("thresholdValue", 0)),
                    reducer=aggregation.get("crossSeriesReducer", "REDUCE_NONE"),
                    group_by=tuple(aggregation.get("groupByFields", ())),
                    kind=known.kind if known else "",
                    value_type=known.value_type if known else "",
                )
            )
    return rules
