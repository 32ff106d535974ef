"""The GCP half as data: a pure function from configuration to the list of resources."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from environments import Environment
from gcp_stack.resources import (
    STACK_LABEL,
    AlertPolicy,
    AwsProvider,
    Bucket,
    Dashboard,
    Function,
    IamMember,
    LogMetric,
    NotificationChannel,
    Resource,
    ServiceAccount,
    ServiceApi,
    Subscription,
    Topic,
    TriggerDeadLetterPolicy,
    UptimeCheck,
    WorkloadIdentityPool,
)

SERVICES = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "sts.googleapis.com",
    "monitoring.googleapis.com",
    "logging.googleapis.com",
)
PUBSUB_AGENT = "serviceAccount:service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Names:
    prefix: str
    project: str

    @property
    def bucket(self) -> str:
        return f"{self.project}-{self.prefix}-assets"

    def account(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def email(self, role: str) -> str:
        return f"{self.account(role)}@{self.project}.iam.gserviceaccount.com"

    @property
    def topic(self) -> str:
        return f"{self.prefix}-submissions"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}-dead-letter"

    @property
    def receipts(self) -> str:
        return f"{self.prefix}-receipts"

    @property
    def receipts_subscription(self) -> str:
        return f"{self.prefix}-receipts-relay"

    @property
    def pool(self) -> str:
        return f"{self.prefix}-aws"

    def function(self, role: str) -> str:
        return f"{self.prefix}-{role}"


def _metric_filter(metric: str, extra: str = "") -> str:
    return f'metric.type="{metric}"' + (f" AND {extra}" if extra else "")


def build(environment: Environment, api_url: str = "") -> list[Resource]:
    gcp, aws = environment.gcp, environment.aws
    names = Names(environment.prefix, gcp.project)
    labels = {STACK_LABEL: environment.prefix}
    services = [ServiceApi(f"service/{name}") for name in SERVICES]
    all_apis = tuple(s.key for s in services)
    sa = {
        role: ServiceAccount(
            f"service_account/{names.account(role)}",
            depends_on=("service/iam.googleapis.com",),
            display_name=f"skybridge {role} ({environment.name})",
            description=f"{description} Managed by gcp_stack ({environment.prefix}).",
        )
        for role, description in {
            "ingest": "Runs the ingest function; may publish to the submissions topic.",
            "store": "Runs the store function; may create objects in the assets bucket.",
            "relay": "The AWS relay, through Workload Identity; may invoke ingest.",
        }.items()
    }
    topic = Topic(f"topic/{names.topic}", all_apis, labels=labels)
    dead_letter = Topic(f"topic/{names.dead_letter}", all_apis, labels=labels)
    dead_letter_sub = Subscription(
        f"subscription/{names.dead_letter}",
        (dead_letter.key,),
        topic=names.dead_letter,
        labels=labels,
    )
    # Receipts: store publishes one per stored object; the relay on AWS is the only
    # subscriber (pull, through Workload Identity: no inbound endpoint on AWS). Retention
    # is the longest Pub/Sub allows, so an AWS outage of up to 7 days loses no receipt.
    receipts = Topic(f"topic/{names.receipts}", all_apis, labels=labels)
    receipts_sub = Subscription(
        f"subscription/{names.receipts_subscription}",
        (receipts.key,),
        topic=names.receipts,
        labels=labels,
        ack_deadline_seconds=60,
    )
    bucket = Bucket(
        f"bucket/{names.bucket}",
        all_apis,
        location=gcp.region,
        labels=labels,
        retention_days=gcp.object_retention_days,
    )
    env_common = {"SKYBRIDGE_SOURCE": "aws", "SKYBRIDGE_METRICS": "none"}
    ingest = Function(
        f"function/{names.function('ingest')}",
        (*all_apis, sa["ingest"].key, topic.key),
        entry_point="ingest",
        runtime=gcp.function_runtime,
        service_account=names.email("ingest"),
        environment=env_common
        | {"SKYBRIDGE_TOPIC": f"projects/{gcp.project}/topics/{names.topic}"},
        labels=labels,
    )
    store = Function(
        f"function/{names.function('store')}",
        (*all_apis, sa["store"].key, topic.key, bucket.key, receipts.key),
        entry_point="store",
        runtime=gcp.function_runtime,
        service_account=names.email("store"),
        environment=env_common
        | {
            "SKYBRIDGE_BUCKET": names.bucket,
            "SKYBRIDGE_RECEIPTS_TOPIC": f"projects/{gcp.project}/topics/{names.receipts}",
        },
        labels=labels,
        trigger_topic=names.topic,
    )
    pool = WorkloadIdentityPool(
        f"workload_identity_pool/{names.pool}",
        all_apis,
        description=f"AWS account {aws.account}: the skybridge relay ({environment.name})",
    )
    provider = AwsProvider(
        "workload_identity_provider/aws",
        (pool.key,),
        pool=names.pool,
        account=aws.account,
        role_name=aws.relay_role_name,
    )
    relay_principal = (
        "principalSet://iam.googleapis.com/projects/{project_number}/locations/global/"
        f"workloadIdentityPools/{names.pool}/attribute.aws_role/{aws.relay_role_name}"
    )
    bindings = [
        ("topic", names.topic, "roles/pubsub.publisher", f"serviceAccount:{names.email('ingest')}",
         (topic.key, sa["ingest"].key)),
        ("bucket", names.bucket, "roles/storage.objectCreator",
         f"serviceAccount:{names.email('store')}", (bucket.key, sa["store"].key)),
        # Receipts, least privilege: store may only publish to the receipts topic, the relay
        # may only pull from (and ack on) its subscription.
        ("topic", names.receipts, "roles/pubsub.publisher",
         f"serviceAccount:{names.email('store')}", (receipts.key, sa["store"].key)),
        ("subscription", names.receipts_subscription, "roles/pubsub.subscriber",
         f"serviceAccount:{names.email('relay')}", (receipts_sub.key, sa["relay"].key)),
        ("run_service", names.function("ingest"), "roles/run.invoker",
         f"serviceAccount:{names.email('relay')}", (ingest.key, sa["relay"].key)),
        ("run_service", names.function("store"), "roles/run.invoker",
         f"serviceAccount:{names.email('store')}", (store.key,)),
        ("project", "", "roles/eventarc.eventReceiver", f"serviceAccount:{names.email('store')}",
         (sa["store"].key,)),
        ("service_account", names.email("relay"), "roles/iam.workloadIdentityUser",
         relay_principal, (sa["relay"].key, provider.key)),
        # Dead-lettering: the Pub/Sub service agent forwards from the trigger's subscription
        # (which Eventarc names itself) to the dead-letter topic.
        ("topic", names.dead_letter, "roles/pubsub.publisher", PUBSUB_AGENT, (dead_letter.key,)),
        ("trigger_subscription", names.function("store"), "roles/pubsub.subscriber",
         PUBSUB_AGENT, (store.key,)),
    ]  # fmt: skip
    iam = [
        IamMember(
            f"iam_member/{kind}:{target or gcp.project} {role} {member}",
            deps,
            target=f"{kind}:{target}" if target else kind,
            role=role,
            member=member,
        )
        for kind, target, role, member, deps in bindings
    ]
    dead_letter_policy = TriggerDeadLetterPolicy(
        f"trigger_dead_letter_policy/{names.function('store')}",
        (store.key, dead_letter.key, iam[-2].key, iam[-1].key),
        function=names.function("store"),
        dead_letter_topic=names.dead_letter,
        max_delivery_attempts=gcp.max_delivery_attempts,
    )
    return [
        *services,
        *sa.values(),
        topic,
        dead_letter,
        dead_letter_sub,
        receipts,
        receipts_sub,
        bucket,
        ingest,
        store,
        pool,
        provider,
        *iam,
        dead_letter_policy,
        *monitoring(environment, names, all_apis, api_url),
    ]


def monitoring(
    environment: Environment, names: Names, deps: tuple[str, ...], api_url: str
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

    def alert(title: str, filter_: str, threshold: float, duration: str, doc: str) -> AlertPolicy:
        return AlertPolicy(
            f"alert_policy/{prefix}: {title}",
            deps,
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
                "pubsub.googleapis.com/subscription/oldest_unacked_message_age", subscription_filter
            ),
            900,
            "300s",
            "Messages wait more than 15 minutes for the store function.",
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

    def chart(title: str, metric: str, extra: str = "", reducer: str = "REDUCE_SUM") -> dict:
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
                                    "perSeriesAligner": "ALIGN_RATE"
                                    if "count" in metric
                                    else "ALIGN_MAX",
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
        chart("Function latency (p99)", "run.googleapis.com/request_latencies", run,
              "REDUCE_PERCENTILE_99"),
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
              f'{subscription_filter} AND '
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
    return resources
