"""What Cloud Monitoring knows about the metrics our GCP monitoring reads, and which aligners
and reducers apply to which kind of metric.

Descriptors (kind, value type, unit, labels) are Google's, from
https://cloud.google.com/monitoring/api/metrics_gcp (run, pubsub, monitoring sections) and
https://cloud.google.com/logging/docs/logs-based-metrics#counter-metric (a counter
log-based metric is DELTA INT64); resource labels from
https://cloud.google.com/monitoring/api/resources. The aligner and reducer rules are the
sentences "This aligner/reducer is valid for … metrics with … values" of
google/monitoring/v3/common.proto, published at
https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies#Aligner and
#Reducer.
"""

from __future__ import annotations

from dataclasses import dataclass

NUMERIC = frozenset({"INT64", "DOUBLE"})
ANY = frozenset({"INT64", "DOUBLE", "DISTRIBUTION", "BOOL", "STRING", "MONEY"})


@dataclass(frozen=True)
class Descriptor:
    kind: str  # GAUGE, DELTA, CUMULATIVE
    value_type: str  # INT64, DOUBLE, DISTRIBUTION, BOOL
    unit: str
    resource: str
    labels: frozenset[str] = frozenset()


RESOURCE_LABELS = {
    "cloud_run_revision": {"project_id", "service_name", "revision_name", "location",
                           "configuration_name"},
    "pubsub_subscription": {"project_id", "subscription_id"},
    "pubsub_topic": {"project_id", "topic_id"},
    "uptime_url": {"project_id", "host"},
}  # fmt: skip

GOOGLE_METRICS = {
    "run.googleapis.com/request_count": Descriptor(
        "DELTA", "INT64", "1", "cloud_run_revision",
        frozenset({"response_code", "response_code_class", "route"})),
    "run.googleapis.com/request_latencies": Descriptor(
        "DELTA", "DISTRIBUTION", "ms", "cloud_run_revision",
        frozenset({"response_code", "response_code_class", "route"})),
    "pubsub.googleapis.com/topic/send_message_operation_count": Descriptor(
        "DELTA", "INT64", "1", "pubsub_topic", frozenset({"response_code", "response_class"})),
    "pubsub.googleapis.com/subscription/num_undelivered_messages": Descriptor(
        "GAUGE", "INT64", "1", "pubsub_subscription"),
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age": Descriptor(
        "GAUGE", "INT64", "s", "pubsub_subscription"),
    "monitoring.googleapis.com/uptime_check/check_passed": Descriptor(
        "GAUGE", "BOOL", "1", "uptime_url", frozenset({"check_id", "checker_location"})),
}  # fmt: skip
LOG_METRIC_PREFIX = "logging.googleapis.com/user/"


def descriptor(metric_type: str, resource: str = "") -> Descriptor | None:
    """Google's descriptor, or a counter log-based metric's (any monitored resource)."""
    if metric_type.startswith(LOG_METRIC_PREFIX):
        return Descriptor("DELTA", "INT64", "1", resource)
    return GOOGLE_METRICS.get(metric_type)


# aligner → (kinds it applies to, value types it applies to, output kind, output type);
# an output of None keeps the input's.
ALIGNERS: dict[str, tuple[frozenset[str], frozenset[str], str | None, str | None]] = {
    "ALIGN_NONE": (frozenset({"GAUGE", "DELTA", "CUMULATIVE"}), ANY, None, None),
    "ALIGN_DELTA": (frozenset({"CUMULATIVE", "DELTA"}), NUMERIC | {"DISTRIBUTION"}, "DELTA", None),
    "ALIGN_RATE": (frozenset({"CUMULATIVE", "DELTA"}), NUMERIC, "GAUGE", "DOUBLE"),
    "ALIGN_INTERPOLATE": (frozenset({"GAUGE"}), NUMERIC, None, None),
    "ALIGN_NEXT_OLDER": (frozenset({"GAUGE"}), ANY, None, None),
    "ALIGN_MIN": (frozenset({"GAUGE", "DELTA"}), NUMERIC, None, None),
    "ALIGN_MAX": (frozenset({"GAUGE", "DELTA"}), NUMERIC, None, None),
    "ALIGN_MEAN": (frozenset({"GAUGE", "DELTA"}), NUMERIC, None, "DOUBLE"),
    "ALIGN_COUNT": (frozenset({"GAUGE", "DELTA"}), NUMERIC | {"BOOL"}, None, "INT64"),
    "ALIGN_SUM": (frozenset({"GAUGE", "DELTA"}), NUMERIC | {"DISTRIBUTION"}, None, None),
    "ALIGN_STDDEV": (frozenset({"GAUGE", "DELTA"}), NUMERIC, None, "DOUBLE"),
    "ALIGN_COUNT_TRUE": (frozenset({"GAUGE"}), frozenset({"BOOL"}), None, "INT64"),
    "ALIGN_COUNT_FALSE": (frozenset({"GAUGE"}), frozenset({"BOOL"}), None, "INT64"),
    "ALIGN_FRACTION_TRUE": (frozenset({"GAUGE"}), frozenset({"BOOL"}), None, "DOUBLE"),
    **{
        f"ALIGN_PERCENTILE_{n}": (frozenset({"GAUGE", "DELTA"}), frozenset({"DISTRIBUTION"}),
                                  None, "DOUBLE")
        for n in ("99", "95", "50", "05")
    },
    "ALIGN_PERCENT_CHANGE": (frozenset({"GAUGE", "DELTA"}), NUMERIC, "GAUGE", "DOUBLE"),
}  # fmt: skip

# reducer → value types it applies to (every reducer: DELTA and GAUGE input only).
REDUCERS: dict[str, frozenset[str]] = {
    "REDUCE_NONE": ANY,
    "REDUCE_MEAN": NUMERIC | {"DISTRIBUTION"},
    "REDUCE_MIN": NUMERIC,
    "REDUCE_MAX": NUMERIC,
    "REDUCE_SUM": NUMERIC | {"DISTRIBUTION"},
    "REDUCE_STDDEV": NUMERIC | {"DISTRIBUTION"},
    "REDUCE_COUNT": ANY,
    "REDUCE_COUNT_TRUE": frozenset({"BOOL"}),
    "REDUCE_COUNT_FALSE": frozenset({"BOOL"}),
    "REDUCE_FRACTION_TRUE": frozenset({"BOOL"}),
    **{f"REDUCE_PERCENTILE_{n}": NUMERIC | {"DISTRIBUTION"} for n in ("99", "95", "50", "05")},
}


def aggregation_problems(
    metric: Descriptor, aligner: str, reducer: str = "REDUCE_NONE"
) -> list[str]:
    """Why Cloud Monitoring would refuse this aligner and reducer on this metric (empty:
    it accepts them)."""
    if aligner not in ALIGNERS:
        return [f"unknown aligner {aligner}"]
    if reducer not in REDUCERS:
        return [f"unknown reducer {reducer}"]
    kinds, types, out_kind, out_type = ALIGNERS[aligner]
    problems = []
    if metric.kind not in kinds or metric.value_type not in types:
        problems.append(
            f"{aligner} does not apply to a {metric.kind} {metric.value_type} metric "
            f"(it takes {'/'.join(sorted(kinds))} with {'/'.join(sorted(types))} values)"
        )
    kind, value_type = out_kind or metric.kind, out_type or metric.value_type
    if reducer != "REDUCE_NONE":
        if aligner == "ALIGN_NONE":
            problems.append("a cross-series reducer needs an aligner other than ALIGN_NONE")
        if kind not in ("GAUGE", "DELTA") or value_type not in REDUCERS[reducer]:
            problems.append(f"{reducer} does not apply to the aligned {kind} {value_type} series")
    return problems
