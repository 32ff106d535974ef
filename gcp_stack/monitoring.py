"""Monitoring as code: log-based metrics, alert policies, a dashboard, an uptime check."""

from __future__ import annotations

from urllib.parse import urlsplit

from environments import Environment
from gcp_stack.names import Names
from gcp_stack.resources import (
    STACK_LABEL,
    AlertPolicy,
    Dashboard,
    LogMetric,
    NotificationChannel,
    Resource,
    UptimeCheck,
)


def _metric_filter(metric: str, extra: str = "") -> str:
    return f'metric.type="{metric}"' + (f" AND {extra}" if extra else "")


def monitoring(
    environment: Environment,
    names: Names,
    deps: tuple[str, ...],
    api_url: str,
    trigger_policy: str,
) -> list[Resource]:
    prefix = environment.prefix
    labels = {STACK_LABEL: prefix}
    resources: list[Resource] = [
        LogMetric(
            f"log_metric/{prefix}-{event.replace('.', '-')}",
            deps,
            filter=f'resource.type="cloud_run_revision" AND jsonPayload.event="{event}"',
            description=description,
        )
        for event, description in {
            "submission.published": "Submissions the ingest function published.",
            "submission.stored": "Objects written by the store function.",
            "submission.undecodable": "Messages the store function could never store.",
            "submission.rejected": "Items the ingest function rejected.",
        }.items()
    ]
    channels: list[str] = []
    if environment.alerts.email:
        channel = NotificationChannel(
            f"notification_channel/{prefix} alerts",
            deps,
            spec={
                "type": "email",
                "labels": {"email_address": environment.alerts.email},
                "userLabels": labels,
                "enabled": True,
            },
        )
        resources.append(channel)
        channels = [f"{{output:{channel.key}:name}}"]
        deps = (*deps, channel.key)

    def alert(
        title: str, filter_: str, threshold: float, duration: str, doc: str, *after: str
    ) -> AlertPolicy:
        return AlertPolicy(
            f"alert_policy/{prefix}: {title}",
            (*deps, *after),
            spec={
                "combiner": "OR",
                "enabled": True,
                "userLabels": labels,
                "notificationChannels": channels,
                "documentation": {"content": doc, "mimeType": "text/markdown"},
                "conditions": [
                    {
                        "displayName": title,
                        "conditionThreshold": {
                            "filter": filter_,
                            "comparison": "COMPARISON_GT",
                            "thresholdValue": threshold,
                            "duration": duration,
                            "aggregations": [
                                {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MAX"}
                            ],
                        },
                    }
                ],
            },
        )

    subscription_filter = 'resource.type="pubsub_subscription"'
    # Only the trigger's subscription (Eventarc names it; the dead-letter policy resource
    # reads it), not every subscription in the project, the dead-letter one included.
    trigger_subscription = f"{{output:{trigger_policy}:subscription}}"
    resources += [
        alert(
            "function errors",
            _metric_filter(
                "run.googleapis.com/request_count",
                f'resource.type="cloud_run_revision" AND '
                f'resource.labels.service_name=starts_with("{prefix}-") AND '
                'metric.labels.response_code_class="5xx"',
            ),
            5,
            "300s",
            "The ingest or store function is failing requests. Check its logs.",
        ),
        alert(
            "delivery backlog",
            _metric_filter(
                "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
                f"{subscription_filter} AND "
                f'resource.labels.subscription_id="{trigger_subscription}"',
            ),
            900,
            "300s",
            "Messages wait more than 15 minutes for the store function.",
            trigger_policy,
        ),
        alert(
            "dead letters",
            _metric_filter(
                "pubsub.googleapis.com/subscription/num_undelivered_messages",
                f'{subscription_filter} AND resource.labels.subscription_id="{names.dead_letter}"',
            ),
            0,
            "60s",
            f"Messages were dead-lettered in subscription {names.dead_letter}. The AWS relay "
            "forwards every unconfirmed submission again after its window (reconciliation), "
            "so nothing needs to be pulled by hand: find why store failed them.",
        ),
        alert(
            "receipts not consumed",
            _metric_filter(
                "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
                f"{subscription_filter} AND "
                f'resource.labels.subscription_id="{names.receipts_subscription}"',
            ),
            900,
            "300s",
            f"Receipts wait more than 15 minutes in {names.receipts_subscription}: the AWS relay "
            "is not confirming deliveries (down, or its Workload Identity access is broken).",
        ),
    ]

    def chart(
        title: str,
        metric: str,
        extra: str = "",
        reducer: str = "REDUCE_SUM",
        aligner: str = "",
    ) -> dict:
        return {
            "title": title,
            "xyChart": {
                "dataSets": [
                    {
                        "plotType": "LINE",
                        "timeSeriesQuery": {
                            "timeSeriesFilter": {
                                "filter": _metric_filter(metric, extra),
                                "aggregation": {
                                    "alignmentPeriod": "60s",
                                    "perSeriesAligner": aligner
                                    or ("ALIGN_RATE" if "count" in metric else "ALIGN_MAX"),
                                    "crossSeriesReducer": reducer,
                                },
                            }
                        },
                    }
                ]
            },
        }

    run = 'resource.type="cloud_run_revision"'
    tiles = [
        chart("Function executions", "run.googleapis.com/request_count", run),
        # A distribution: align to deltas, then take the 99th percentile across series
        # (ALIGN_MAX is for numeric metrics only; https://cloud.google.com/monitoring/api/v3/aggregation).
        chart("Function latency (p99)", "run.googleapis.com/request_latencies", run,
              "REDUCE_PERCENTILE_99", "ALIGN_DELTA"),
        chart("Function errors (5xx)", "run.googleapis.com/request_count",
              f'{run} AND metric.labels.response_code_class="5xx"'),
        chart("Pub/Sub publish rate", "pubsub.googleapis.com/topic/send_message_operation_count",
              'resource.type="pubsub_topic"'),
        chart("Undelivered messages", "pubsub.googleapis.com/subscription/num_undelivered_messages",
              subscription_filter),
        chart("Oldest unacked age (s)",
              "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
              subscription_filter, "REDUCE_MAX"),
        chart("Dead letters", "pubsub.googleapis.com/subscription/num_undelivered_messages",
              f'{subscription_filter} AND resource.labels.subscription_id="{names.dead_letter}"'),
        chart("Objects written",
              f"logging.googleapis.com/user/{prefix}-submission-stored", run),
        chart("Receipts published", "pubsub.googleapis.com/topic/send_message_operation_count",
              f'resource.type="pubsub_topic" AND resource.labels.topic_id="{names.receipts}"'),
        chart("Receipts waiting for AWS (oldest, s)",
              "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
              f"{subscription_filter} AND "
              f'resource.labels.subscription_id="{names.receipts_subscription}"', "REDUCE_MAX"),
    ]  # fmt: skip
    resources.append(
        Dashboard(
            f"dashboard/{prefix}",
            deps,
            spec={
                "labels": labels,
                "mosaicLayout": {
                    "columns": 12,
                    "tiles": [
                        {
                            "xPos": (i % 2) * 6,
                            "yPos": (i // 2) * 4,
                            "width": 6,
                            "height": 4,
                            "widget": tile,
                        }
                        for i, tile in enumerate(tiles)
                    ],
                },
            },
        )
    )
    if api_url:
        url = urlsplit(api_url)
        https = url.scheme == "https"
        resources.append(
            UptimeCheck(
                f"uptime_check/{prefix} api healthz",
                deps,
                spec={
                    "monitoredResource": {
                        "type": "uptime_url",
                        "labels": {"host": url.hostname or "", "project_id": names.project},
                    },
                    "httpCheck": {
                        "path": "/healthz",
                        "port": url.port or (443 if https else 80),
                        "useSsl": https,
                        "validateSsl": https,
                        "requestMethod": "GET",
                    },
                    "period": "300s",
                    "timeout": "10s",
                    "userLabels": labels,
                },
            )
        )
        resources.append(uptime_alert(resources[-1].key, labels, channels, deps))
    return resources


def uptime_alert(
    check: str, labels: dict[str, str], channels: list[str], deps: tuple[str, ...]
) -> AlertPolicy:
    """The API is down as Google's checkers see it: the policy the console creates for an
    uptime check. check_passed is a GAUGE BOOL per checker location, so each series is
    aligned to its latest result (ALIGN_NEXT_OLDER) and the failures counted across the
    locations (REDUCE_COUNT_FALSE); more than one location failing is an outage, not one
    checker's network. https://cloud.google.com/monitoring/uptime-checks/uptime-alerting-policies
    and the provider's google_monitoring_alert_policy uptime example."""
    title = "API unreachable"
    return AlertPolicy(
        f"alert_policy/{labels[STACK_LABEL]}: {title}",
        (*deps, check),
        spec={
            "combiner": "OR",
            "enabled": True,
            "userLabels": labels,
            "notificationChannels": channels,
            "documentation": {
                "content": "More than one of Google's uptime checkers cannot GET the AWS "
                "API's /healthz: the API (ALB, instances or database) is down for users.",
                "mimeType": "text/markdown",
            },
            "conditions": [
                {
                    "displayName": title,
                    "conditionThreshold": {
                        "filter": _metric_filter(
                            "monitoring.googleapis.com/uptime_check/check_passed",
                            'resource.type="uptime_url" AND '
                            f'metric.labels.check_id="{{output:{check}:check_id}}"',
                        ),
                        "comparison": "COMPARISON_GT",
                        "thresholdValue": 1,
                        "duration": "60s",
                        "aggregations": [
                            {
                                "alignmentPeriod": "1200s",
                                "perSeriesAligner": "ALIGN_NEXT_OLDER",
                                "crossSeriesReducer": "REDUCE_COUNT_FALSE",
                                "groupByFields": ["resource.label.*"],
                            }
                        ],
                    },
                }
            ],
        },
    )
