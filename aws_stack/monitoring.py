"""Monitoring: one CloudWatch dashboard, and alarms on what a person should be woken for,
all to one SNS topic (with an optional e-mail subscription)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from constructs import Construct

NAMESPACE = "Skybridge"  # the runtime's EMF namespace (runtime.settings.metrics_namespace)


def runtime_metric(name: str, service: str, statistic: str = "Sum") -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"Service": service},
        statistic=statistic,
        period=Duration.minutes(1),
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        topic: sns.ITopic,
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        group: autoscaling.AutoScalingGroup,
        database: rds.DatabaseInstance,
        confirm_window_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        lb = load_balancer.metrics
        requests = lb.request_count(period=Duration.minutes(1))
        latency = lb.target_response_time(statistic="p99", period=Duration.minutes(1))
        errors = lb.http_code_target(
            elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=Duration.minutes(1)
        )
        # The load balancer's own 5xx: 502/503/504 when no target answers (all down, or
        # timing out), which Target 5xx cannot see.
        elb_errors = lb.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=Duration.minutes(1))
        healthy = target_group.metrics.healthy_host_count(period=Duration.minutes(1))
        cpu = cloudwatch.Metric(
            namespace="AWS/EC2",
            metric_name="CPUUtilization",
            dimensions_map={"AutoScalingGroupName": group.auto_scaling_group_name},
            statistic="Average",
            period=Duration.minutes(1),
        )
        backlog = runtime_metric("OutboxBacklog", "relay", "Maximum")
        oldest = runtime_metric("OutboxOldestAgeSeconds", "relay", "Maximum")
        failed = runtime_metric("Failed", "relay")
        # Delivery receipts: what GCP confirmed, and what it has not (yet).
        stored = runtime_metric("Stored", "relay")
        mismatch = runtime_metric("ReceiptMismatch", "relay")
        unconfirmed = runtime_metric("Unconfirmed", "relay", "Maximum")
        unconfirmed_age = runtime_metric("UnconfirmedOldestAgeSeconds", "relay", "Maximum")
        end_to_end = {
            statistic: runtime_metric("EndToEndLatencyMs", "relay", statistic)
            for statistic in ("p50", "p99")
        }

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Requests", left=[requests]),
            cloudwatch.GraphWidget(title="Latency p99 (s)", left=[latency]),
            cloudwatch.GraphWidget(title="5xx: target / load balancer", left=[errors, elb_errors]),
            cloudwatch.GraphWidget(title="Healthy hosts", left=[healthy]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Instance CPU %", left=[cpu]),
            cloudwatch.GraphWidget(title="RDS CPU %", left=[database.metric_cpu_utilization()]),
            cloudwatch.GraphWidget(
                title="RDS connections", left=[database.metric_database_connections()]
            ),
            cloudwatch.GraphWidget(
                title="RDS free storage (bytes)", left=[database.metric_free_storage_space()]
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Submissions",
                left=[
                    runtime_metric("Accepted", "api"),
                    runtime_metric("Forwarded", "relay"),
                    stored,
                    failed,
                ],
            ),
            cloudwatch.GraphWidget(title="Outbox backlog", left=[backlog]),
            cloudwatch.GraphWidget(title="Oldest pending (s)", left=[oldest]),
            cloudwatch.GraphWidget(
                title="Forward latency p99 (ms)",
                left=[runtime_metric("ForwardLatencyMs", "relay", "p99")],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="End-to-end accepted → stored (ms)",
                left=[end_to_end["p50"], end_to_end["p99"]],
            ),
            cloudwatch.GraphWidget(title="Unconfirmed (forwarded, no receipt)", left=[unconfirmed]),
            cloudwatch.GraphWidget(title="Oldest unconfirmed (s)", left=[unconfirmed_age]),
            cloudwatch.GraphWidget(
                title="Receipts: redelivered / mismatched",
                left=[runtime_metric("Redelivered", "relay"), mismatch],
            ),
        )

        alarms = {
            # Users see errors.
            "Target5xx": (errors, 10, 3, "more than 10 5xx a minute for 3 minutes"),
            "Elb5xx": (
                elb_errors,
                10,
                3,
                "the load balancer answered more than 10 5xx a minute for 3 minutes: "
                "no target reachable (instances down or timing out)",
            ),
            "NoHealthyHosts": (healthy, 1, 2, "fewer than one healthy instance"),
            # GCP is not taking deliveries: the backlog ages.
            "OutboxAge": (oldest, 900, 3, "oldest undelivered submission older than 15 minutes"),
            "FailedSubmissions": (failed, 1, 1, "a submission exhausted its delivery attempts"),
            # GCP has not confirmed a submission for two windows: reconciliation is forwarding
            # it again and again (store failing, or receipts not arriving).
            "UnconfirmedAge": (
                unconfirmed_age,
                2 * confirm_window_seconds,
                3,
                f"a forwarded submission has had no receipt for {2 * confirm_window_seconds} s",
            ),
            # Someone or something stored other content under a submission's id.
            "ReceiptMismatch": (mismatch, 1, 1, "a receipt's sha256 differs from the accepted one"),
            "UnconfirmedFailed": (
                runtime_metric("UnconfirmedFailed", "relay"),
                1,
                1,
                "a submission failed: no receipt after every redelivery",
            ),
            "DatabaseStorage": (
                database.metric_free_storage_space(),
                2 * 1024**3,
                1,
                "less than 2 GiB free on the database",
            ),
            "DatabaseCpu": (database.metric_cpu_utilization(), 90, 5, "database CPU above 90%"),
        }
        below = {"NoHealthyHosts", "DatabaseStorage"}
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for name, (metric, threshold, periods, description) in alarms.items():
            alarm = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                alarm_description=description,
                comparison_operator=(
                    cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
                    if name in below
                    else cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
                ),
                treat_missing_data=(
                    cloudwatch.TreatMissingData.BREACHING
                    if name == "NoHealthyHosts"
                    else cloudwatch.TreatMissingData.NOT_BREACHING
                ),
            )
            alarm.add_alarm_action(actions.SnsAction(topic))
            alarm.add_ok_action(actions.SnsAction(topic))
            self.alarms[name] = alarm
