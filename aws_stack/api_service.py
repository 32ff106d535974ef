"""API service: an Application Load Balancer in front of an Auto Scaling group of Graviton
instances on Amazon Linux 2023 running gunicorn (the API) and the relay as systemd units.

The instances install the one runtime artifact (a CDK asset built by deployment.packaging),
from a wheelhouse shipped as a second asset when the app is given one (`-c wheelhouse=true`)
or else from PyPI; they read their settings from SSM parameters and the database secret at
start, and ship their logs (including EMF metric lines) to CloudWatch through the agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from aws_stack.instance_boot import APP_PORT, LIVENESS_PATH, BootSettings, boot_commands

# How long one instance's boot may take before CloudFormation counts it failed: the boot
# measured in tests/aws_stack/test_boot.py, with the budget in docs/deploy.md.
BOOT_TIMEOUT = Duration.minutes(15)
# Not answered to the internet: readiness shows the outbox backlog. The target group's
# health checks reach the instances directly, not through the listener, so they still work.
# /healthz stays public: it says only "ok", and GCP's uptime check calls it.
INTERNAL_PATHS = ("/readyz", "/livez")


@dataclass(frozen=True)
class GcpTarget:
    """What the relay needs of the GCP half (from `python -m gcp_stack deploy`'s outputs)."""

    ingest_url: str
    credential_config: dict
    service_account: str
    receipts_subscription: str  # the relay pulls GCP's delivery receipts from it


class ApiService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        app_subnets: ec2.SubnetSelection,
        artifact: Path,
        wheelhouse: Path | None = None,
        database_secret: secretsmanager.ISecret,
        gcp: GcpTarget,
        confirm_window_seconds: int,
        max_redeliveries: int,
        submissions_per_minute: int,
        retention_stored_days: int,
        retention_failed_days: int,
        instance_type: str,
        min_capacity: int,
        max_capacity: int,
        role_name: str,
        certificate_arn: str,
        alarm_topic: sns.ITopic,
        log_prefix: str,
        production: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if production else RemovalPolicy.DESTROY
        self.log_groups = {
            name: logs.LogGroup(
                self,
                f"{name.title()}Logs",
                log_group_name=f"{log_prefix}/{name}",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=removal,
            )
            for name in ("api", "relay")
        }
        parameters = {
            "ingest-url": gcp.ingest_url,
            "gcp-credential-config": json.dumps(gcp.credential_config, sort_keys=True),
            "gcp-service-account": gcp.service_account,
            "receipts-subscription": gcp.receipts_subscription,
            "confirm-window-seconds": str(confirm_window_seconds),
            "confirm-max-redeliveries": str(max_redeliveries),
        }
        self.parameters = {
            name: ssm.StringParameter(
                self,
                f"Param{''.join(part.title() for part in name.split('-'))}",
                parameter_name=f"{log_prefix}/{name}",
                string_value=value,
            )
            for name, value in parameters.items()
        }

        # GCP trusts this role by name (Workload Identity provider attribute condition).
        self.role = iam.Role(
            self,
            "InstanceRole",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="skybridge API + relay instances; GCP's Workload Identity trusts this name",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"),
                iam.ManagedPolicy.from_aws_managed_policy_name("CloudWatchAgentServerPolicy"),
            ],
        )
        asset = s3_assets.Asset(self, "Artifact", path=str(artifact))
        asset.grant_read(self.role)
        wheels = None
        if wheelhouse is not None:  # a directory: CDK zips it
            wheels = s3_assets.Asset(self, "Wheelhouse", path=str(wheelhouse))
            wheels.grant_read(self.role)
        database_secret.grant_read(self.role)
        for parameter in self.parameters.values():
            parameter.grant_read(self.role)

        self.security_group = ec2.SecurityGroup(
            self, "InstanceSecurityGroup", vpc=vpc, description="skybridge instances",
            allow_all_outbound=True,
        )  # fmt: skip
        user_data = ec2.UserData.for_linux()
        launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(instance_type),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=ec2.AmazonLinuxCpuType.ARM_64
            ),
            role=self.role,
            security_group=self.security_group,
            require_imdsv2=True,
            # The relay runs on the host, not in a container: one hop reaches IMDS.
            http_put_response_hop_limit=1,
            detailed_monitoring=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        20, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
            user_data=user_data,
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Instances",
            vpc=vpc,
            vpc_subnets=app_subnets,
            launch_template=launch_template,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            # The ELB check is /livez (shallow): a database blip never makes the group
            # replace instances. The grace covers a boot (the signal only comes once the
            # API answers, so a slower boot fails by its signal, not by this check).
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB],
                grace_period=BOOT_TIMEOUT,
            ),
            # CloudFormation waits for each instance's cfn-signal (sent by the boot once
            # /readyz answers locally): a create fails, and an update rolls back, on a
            # failure signal or none within the timeout, instead of replacing healthy
            # instances with broken ones.
            signals=autoscaling.Signals.wait_for_all(timeout=BOOT_TIMEOUT),
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                min_instances_in_service=min_capacity, max_batch_size=1,
                wait_on_resource_signals=True, pause_time=BOOT_TIMEOUT,
            ),
            notifications=[autoscaling.NotificationConfiguration(topic=alarm_topic)],
        )  # fmt: skip
        # Fixed settings of every unit (runtime.env). The ALB appends the one X-Forwarded-For
        # entry the app may trust: the address it saw, which the app's own limit counts by.
        unit_settings = {
            "SKYBRIDGE_TRUSTED_PROXY_HOPS": "1",
            "SKYBRIDGE_SUBMISSIONS_PER_MINUTE": str(submissions_per_minute),
            "SKYBRIDGE_RETENTION_STORED_DAYS": str(retention_stored_days),
            "SKYBRIDGE_RETENTION_FAILED_DAYS": str(retention_failed_days),
        }
        self._boot(user_data, asset, wheels, database_secret, log_prefix, unit_settings)
        self.group.scale_on_cpu_utilization("Cpu", target_utilization_percent=60)

        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=removal,
            auto_delete_objects=not production,
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self, "LoadBalancer", vpc=vpc, internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
        )  # fmt: skip
        self.load_balancer.log_access_logs(access_logs, prefix="alb")
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=vpc,
            port=APP_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.group],
            deregistration_delay=Duration.seconds(30),
            # Liveness, not readiness: an instance whose database is away is not broken,
            # and replacing the whole fleet over a failover would make the outage worse.
            health_check=elbv2.HealthCheck(
                path=LIVENESS_PATH, healthy_http_codes="200", interval=Duration.seconds(15)
            ),
        )
        if certificate_arn:
            listener = self.load_balancer.add_listener(
                "Https",
                port=443,
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                default_target_groups=[self.target_group],
            )
            self.load_balancer.add_redirect(source_port=80, target_port=443)
            self.url = f"https://{self.load_balancer.load_balancer_dns_name}"
        else:
            listener = self.load_balancer.add_listener(
                "Http", port=80, default_target_groups=[self.target_group]
            )
            self.url = f"http://{self.load_balancer.load_balancer_dns_name}"
        listener.add_action(
            "RefuseInternal",
            priority=1,
            conditions=[elbv2.ListenerCondition.path_patterns(list(INTERNAL_PATHS))],
            action=elbv2.ListenerAction.fixed_response(
                404, content_type="application/problem+json",
                message_body='{"type":"about:blank","title":"Not Found","status":404}',
            ),
        )  # fmt: skip
        # Only the load balancer reaches the instances, and only on the app port.
        self.group.connections.allow_from(
            self.load_balancer, ec2.Port.tcp(APP_PORT), "load balancer to gunicorn"
        )

    def _boot(
        self,
        user_data: ec2.UserData,
        asset: s3_assets.Asset,
        wheels: s3_assets.Asset | None,
        secret: secretsmanager.ISecret,
        log_prefix: str,
        unit_settings: dict[str, str],
    ) -> None:
        stack = Stack.of(self)
        group = self.group.node.default_child
        assert isinstance(group, autoscaling.CfnAutoScalingGroup)
        settings = BootSettings(
            stack_name=stack.stack_name,
            signal_resource=stack.get_logical_id(group),
            signal_region=stack.region,
            artifact_url=asset.s3_object_url,
            wheelhouse_url=wheels.s3_object_url if wheels is not None else None,
            database_secret_arn=secret.secret_arn,
            log_prefix=log_prefix,
            credential_config_parameter=self.parameters["gcp-credential-config"].parameter_name,
            environment=unit_settings,
            ssm_settings={
                "SKYBRIDGE_INGEST_URL": self.parameters["ingest-url"].parameter_name,
                "SKYBRIDGE_GCP_SERVICE_ACCOUNT": self.parameters[
                    "gcp-service-account"
                ].parameter_name,
                **{
                    f"SKYBRIDGE_{name.upper().replace('-', '_')}": self.parameters[
                        name
                    ].parameter_name
                    for name in (
                        "receipts-subscription",
                        "confirm-window-seconds",
                        "confirm-max-redeliveries",
                    )
                },
            },
        )
        user_data.add_commands(*boot_commands(settings))
