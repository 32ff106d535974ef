"""The signal reader, the filter subset and the alarm evaluator on hand-made data: each rule
of the clouds' documented behaviour that the monitoring tests rely on."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from local_stack import alarms, definitions
from local_stack.filters import FilterError, compile_filter, fields
from local_stack.metric_kinds import GOOGLE_METRICS, aggregation_problems, descriptor
from local_stack.probe import CHECKER_LOCATIONS, UPTIME_CHECK_ID
from local_stack.signals import Entry, Point, Signals, emf_points


def test_emf_defines_one_point_per_metric_dimension_set_and_value():
    document = {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Skybridge",
                    "Dimensions": [["Service"], ["Service", "Stage"]],
                    "Metrics": [{"Name": "Accepted", "Unit": "Count"}],
                }
            ],
        },
        "Service": "api",
        "Stage": "dev",
        "Accepted": [1, 2],
    }
    points = emf_points(document)
    assert {(p.dimensions, p.value) for p in points} == {
        ((("Service", "api"),), 1.0),
        ((("Service", "api"),), 2.0),
        ((("Service", "api"), ("Stage", "dev")), 1.0),
        ((("Service", "api"), ("Stage", "dev")), 2.0),
    }
    assert {p.time for p in points} == {1_700_000_000.0}


def test_signals_read_whole_lines_once_and_give_functions_their_cloud_run_resource(tmp_path):
    log = tmp_path / "store.log"
    line = {"time": "2026-01-01T00:00:00+00:00", "severity": "INFO", "event": "submission.stored"}
    log.write_text(json.dumps(line) + "\nnot json\n" + json.dumps(line)[:10])
    signals = Signals(tmp_path, service_prefix="skybridge-dev")
    _, entries = signals.poll()
    assert len(entries) == 1
    assert entries[0].field("resource.labels.service_name") == "skybridge-dev-store"
    assert entries[0].field("jsonPayload.event") == "submission.stored"
    with log.open("a") as handle:
        handle.write(json.dumps(line)[10:] + "\n")
    assert len(signals.poll()[1]) == 1  # the partial line, completed
    assert signals.poll() == ([], [])


def entry(**payload) -> Entry:
    resource = {"type": "cloud_run_revision", "labels": {"service_name": "skybridge-dev-store"}}
    return Entry(0.0, "store", "INFO", resource, payload)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('resource.type="cloud_run_revision" AND jsonPayload.event="submission.stored"', True),
        ('resource.type="cloud_run_revision" jsonPayload.event="submission.stored"', True),
        ('jsonPayload.event="submission.duplicate"', False),
        ('resource.labels.service_name=starts_with("skybridge-dev-")', True),
        ('resource.labels.service_name=starts_with("skybridge-prod-")', False),
        ('NOT jsonPayload.event="x"', True),
        ('-jsonPayload.event="submission.stored"', False),
        ('jsonPayload.event=~"^submission\\."', True),
        ('jsonPayload.missing="x"', False),
        ('jsonPayload.missing!="x"', True),
        ('jsonPayload.event:"STORED"', True),
        ('(jsonPayload.event="a" OR jsonPayload.event="submission.stored")', True),
        ("jsonPayload.attempt>=3", True),
    ],
)
def test_filter_subset(text, expected):
    assert compile_filter(text)(entry(event="submission.stored", attempt=3).field) is expected


def test_filter_refuses_what_it_cannot_read_rightly():
    with pytest.raises(FilterError):
        compile_filter('a="1" AND b="2" OR c="3"')  # precedence differs between the languages
    with pytest.raises(FilterError):
        compile_filter('a=regex("x")')
    assert fields('metric.type="m" AND resource.labels.x=starts_with("y")') == {
        "metric.type",
        "resource.labels.x",
    }


def cloudwatch_rule(**overrides) -> alarms.Rule:
    values = dict(
        cloud="aws", name="r", metric="Skybridge/Failed", selects=lambda p: True,
        statistic="Sum", period=60.0, evaluation_periods=3, datapoints_to_alarm=3,
        comparison="GreaterThanOrEqualToThreshold", threshold=1.0, missing="notBreaching",
    )  # fmt: skip
    return alarms.Rule(**(values | overrides))


def at(*times: float, value: float = 1.0) -> list[Point]:
    return [Point(t, "Skybridge", "Failed", (), value) for t in times]


def test_cloudwatch_needs_datapoints_to_alarm_of_evaluation_periods():
    rule = cloudwatch_rule()
    assert rule.state_at(at(10, 70, 130), 180) == alarms.ALARM
    assert rule.state_at(at(10, 130), 180) == alarms.OK
    assert cloudwatch_rule(datapoints_to_alarm=2).state_at(at(10, 130), 180) == alarms.ALARM


def test_cloudwatch_missing_data_is_treated_as_the_alarm_says():
    assert cloudwatch_rule(missing="notBreaching").state_at([], 180) == alarms.OK
    assert cloudwatch_rule(missing="breaching").state_at([], 180) == alarms.ALARM
    assert cloudwatch_rule(missing="missing").state_at([], 180) == alarms.INSUFFICIENT
    rule = cloudwatch_rule(missing="breaching", comparison="LessThanThreshold",
                           datapoints_to_alarm=1)  # fmt: skip
    assert rule.state_at(at(10, 70, 130), 180) == alarms.OK
    assert rule.state_at(at(10, 70), 180) == alarms.ALARM  # the empty third period breaches


def test_cloudwatch_statistics_and_time_compression():
    values = [Point(float(i) / 10, "Skybridge", "Failed", (), float(i)) for i in range(100)]
    assert alarms.statistic("p99", [p.value for p in values], 60) == 98
    rule = cloudwatch_rule(
        metric="Skybridge/OutboxOldestAgeSeconds",
        threshold=900.0,
        statistic="Maximum",
        evaluation_periods=1,
        datapoints_to_alarm=1,
    )
    ages = [Point(0.4, "Skybridge", "OutboxOldestAgeSeconds", (), 8.0)]
    assert rule.state_at(ages, 0.5, scale=120) == alarms.ALARM  # 8 s ≥ 900 s / 120
    assert rule.state_at(ages, 0.5, scale=60) == alarms.OK  # 8 s < 15 s


def gcp_rule(duration: str, aligner: str = "ALIGN_MAX") -> alarms.Rule:
    (rule,) = alarms.gcp_rules([{"conditions": [{
        "displayName": "errors",
        "conditionThreshold": {
            "filter": 'metric.type="run.googleapis.com/request_count" AND '
                      'metric.labels.response_code_class="5xx"',
            "comparison": "COMPARISON_GT", "thresholdValue": 5, "duration": duration,
            "aggregations": [{"alignmentPeriod": "60s", "perSeriesAligner": aligner}],
        },
    }]}])  # fmt: skip
    return rule


def requests_at(times: list[float], code_class: str = "5xx") -> list[Point]:
    labels = (("metric.labels.response_code_class", code_class),)
    return [Point(t, "", "run.googleapis.com/request_count", labels, 1.0) for t in times]


def test_gcp_delta_counts_align_to_the_count_of_the_window_and_need_the_whole_duration():
    six_a_minute = requests_at([m * 60 + s for m in range(5) for s in range(6)])
    assert gcp_rule("0s").state_at(six_a_minute, 60) == alarms.ALARM
    assert gcp_rule("300s").state_at(six_a_minute, 240) == alarms.OK  # four minutes so far
    assert gcp_rule("300s").state_at(six_a_minute, 300) == alarms.ALARM
    assert gcp_rule("0s").state_at(requests_at(list(range(6)), "2xx"), 60) == alarms.OK
    assert gcp_rule("0s", "ALIGN_RATE").state_at(six_a_minute, 60) == alarms.OK  # 0.1/s


def test_aggregation_rules_follow_the_metric_kind():
    latencies = GOOGLE_METRICS["run.googleapis.com/request_latencies"]
    assert aggregation_problems(latencies, "ALIGN_MAX", "REDUCE_PERCENTILE_99")
    assert aggregation_problems(latencies, "ALIGN_DELTA", "REDUCE_PERCENTILE_99") == []
    assert aggregation_problems(latencies, "ALIGN_PERCENTILE_99", "REDUCE_MAX") == []
    age = GOOGLE_METRICS["pubsub.googleapis.com/subscription/oldest_unacked_message_age"]
    assert aggregation_problems(age, "ALIGN_RATE")  # a gauge has no rate
    assert aggregation_problems(age, "ALIGN_MAX", "REDUCE_MAX") == []
    counter = descriptor("logging.googleapis.com/user/x")
    assert counter is not None and aggregation_problems(counter, "ALIGN_RATE", "REDUCE_SUM") == []
    assert aggregation_problems(counter, "ALIGN_NONE", "REDUCE_SUM")


def test_uptime_alert_counts_failing_checker_locations():
    """The desired state's uptime policy, pointed at the local prober: each checker
    location is its own series; more than one failing is the condition, one alone is not."""
    defs = definitions.for_local("skybridge-dev")
    (rule,) = [r for r in defs.gcp_rules() if r.name == "API unreachable"]

    def results(failing: set[str]) -> list[Point]:
        return [
            Point(99.0, "", rule.metric, (("metric.labels.check_id", UPTIME_CHECK_ID),
                  ("metric.labels.checker_location", where), ("resource.type", "uptime_url")),
                  float(where not in failing))
            for where in CHECKER_LOCATIONS
        ]  # fmt: skip

    assert rule.state_at(results(set()), 100.0) == alarms.OK
    assert rule.state_at(results({"eur-belgium"}), 100.0) == alarms.OK
    assert rule.state_at(results({"eur-belgium", "usa-virginia"}), 100.0) == alarms.ALARM
    older_failures = [replace(p, time=10.0, value=0.0) for p in results(set())]
    assert rule.state_at(older_failures + results(set()), 100.0) == alarms.OK  # latest wins
