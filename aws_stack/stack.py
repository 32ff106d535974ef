"""The AWS half as one deployment unit: network, database, API service, monitoring."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from aws_stack.api_service import ApiService, GcpTarget
from aws_stack.database import Database
from aws_stack.monitoring import Monitoring
from aws_stack.network import Network
from aws_stack.waf import AbuseLimits
from environments import Environment


class SkybridgeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: Environment,
        gcp: GcpTarget,
        artifact: Path,
        wheelhouse: Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        aws, production = environment.aws, environment.production

        network = Network(self, "Network", nat_gateways=aws.nat_gateways, production=production)
        database = Database(
            self,
            "Database",
            vpc=network.vpc,
            subnets=network.data_subnets,
            instance_class=aws.db_instance_class,
            multi_az=aws.db_multi_az,
            allocated_storage_gib=aws.db_allocated_storage_gib,
            backup_retention_days=aws.db_backup_retention_days,
            production=production,
            version=aws.db_engine_version,
        )

        alarm_key = kms.Key(
            self, "AlarmTopicKey", enable_key_rotation=True, description="skybridge alarm topic"
        )
        alarm_key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        # Auto Scaling publishes its notifications as its service-linked role, which needs
        # the key itself. Named by a condition, not as the principal: KMS rejects a policy
        # naming a role that does not exist yet, and an account's first group creates it.
        alarm_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AutoScalingServiceLinkedRole",
                principals=[iam.AnyPrincipal()],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "aws:PrincipalArn": f"arn:{self.partition}:iam::{self.account}:role/"
                        "aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
                        "kms:CallerAccount": self.account,
                    }
                },
            )
        )
        alarm_topic = sns.Topic(
            self, "AlarmTopic", display_name=f"{environment.prefix} alarms",
            master_key=alarm_key, enforce_ssl=True,
        )  # fmt: skip
        if environment.alerts.email:
            alarm_topic.add_subscription(subscriptions.EmailSubscription(environment.alerts.email))

        service = ApiService(
            self,
            "Api",
            vpc=network.vpc,
            app_subnets=network.app_subnets,
            artifact=artifact,
            wheelhouse=wheelhouse,
            database_secret=database.secret,
            gcp=gcp,
            confirm_window_seconds=environment.confirm_window_seconds,
            max_redeliveries=environment.receipts.max_redeliveries,
            submissions_per_minute=environment.limits.submissions_per_ip_per_minute,
            retention_stored_days=environment.retention.stored_days,
            retention_failed_days=environment.retention.failed_days,
            instance_type=aws.instance_type,
            min_capacity=aws.min_capacity,
            max_capacity=aws.max_capacity,
            role_name=aws.relay_role_name,
            certificate_arn=aws.certificate_arn,
            alarm_topic=alarm_topic,
            log_prefix=f"/{environment.prefix}",
            production=production,
        )
        # Only the instances reach the database, and only on its port.
        database.connections.allow_default_port_from(service.group, "instances to MySQL")

        AbuseLimits(
            self,
            "Waf",
            load_balancer=service.load_balancer,
            limits=environment.limits,
            name=environment.prefix,
        )
        monitoring = Monitoring(
            self,
            "Monitoring",
            dashboard_name=environment.prefix,
            topic=alarm_topic,
            load_balancer=service.load_balancer,
            target_group=service.target_group,
            group=service.group,
            database=database.instance,
            confirm_window_seconds=environment.confirm_window_seconds,
        )

        CfnOutput(self, "ApiUrl", value=service.url)
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#dashboards:name={monitoring.dashboard.dashboard_name}",
        )
        CfnOutput(self, "AlarmTopicArn", value=alarm_topic.topic_arn)
        CfnOutput(self, "DatabaseEndpoint", value=database.instance.db_instance_endpoint_address)
        CfnOutput(self, "InstanceRoleArn", value=service.role.role_arn)

    @property
    def availability_zones(self) -> list[str]:
        # Two fixed AZs: synth stays offline (no context lookup, no credentials).
        return [f"{self.region}a", f"{self.region}b"]
