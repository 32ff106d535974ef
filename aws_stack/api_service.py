"""API service: an Application Load Balancer in front of an Auto Scaling group of Graviton
instances on Amazon Linux 2023 running gunicorn (the API) and the relay as systemd units.

The instances install the one runtime artifact (a CDK asset built by deployment.packaging),
from a wheelhouse shipped as a second asset when the app is given one (`-c wheelhouse=true`)
or else from PyPI; they read their settings from SSM parameters and the database secret at
start, and ship their logs (including EMF metric lines) to CloudWatch through the agent.
"""

from __future__ import annotations

import json
import shlex
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

from runtime import commands

APP_PORT = 8000
APP_DIR = "/opt/skybridge/app"
VENV = "/opt/skybridge/venv"
WHEELHOUSE = "/opt/skybridge/wheelhouse"
PYTHON = f"{VENV}/bin/python"
RDS_CA = "/opt/skybridge/rds-global-bundle.pem"
RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


@dataclass(frozen=True)
class GcpTarget:
    """What the relay needs of the GCP half (from `python -m gcp_stack deploy`'s outputs)."""

    ingest_url: str
    credential_config: dict
    service_account: str


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
            http_put_response_hop_limit=2,  # the relay reaches IMDS for Workload Identity
            detailed_monitoring=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        20, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
            user_data=self._user_data(asset, wheels, database_secret, log_prefix),
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Instances",
            vpc=vpc,
            vpc_subnets=app_subnets,
            launch_template=launch_template,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB],
                grace_period=Duration.minutes(5),
            ),
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                min_instances_in_service=min_capacity, max_batch_size=1,
                pause_time=Duration.minutes(10), wait_on_resource_signals=False,
            ),
            notifications=[autoscaling.NotificationConfiguration(topic=alarm_topic)],
        )  # fmt: skip
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
            health_check=elbv2.HealthCheck(
                path="/readyz", healthy_http_codes="200", interval=Duration.seconds(15)
            ),
        )
        if certificate_arn:
            self.load_balancer.add_listener(
                "Https",
                port=443,
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                default_target_groups=[self.target_group],
            )
            self.load_balancer.add_redirect(source_port=80, target_port=443)
            self.url = f"https://{self.load_balancer.load_balancer_dns_name}"
        else:
            self.load_balancer.add_listener(
                "Http", port=80, default_target_groups=[self.target_group]
            )
            self.url = f"http://{self.load_balancer.load_balancer_dns_name}"
        # Only the load balancer reaches the instances, and only on the app port.
        self.group.connections.allow_from(
            self.load_balancer, ec2.Port.tcp(APP_PORT), "load balancer to gunicorn"
        )

    def _user_data(
        self,
        asset: s3_assets.Asset,
        wheels: s3_assets.Asset | None,
        secret: secretsmanager.ISecret,
        log_prefix: str,
    ) -> ec2.UserData:
        region = Stack.of(self).region
        user_data = ec2.UserData.for_linux()
        zip_path = user_data.add_s3_download_command(
            bucket=asset.bucket, bucket_key=asset.s3_object_key, local_file="/opt/skybridge/app.zip"
        )
        unpack_wheels, index = [], ""
        if wheels is not None:
            wheels_zip = user_data.add_s3_download_command(
                bucket=wheels.bucket,
                bucket_key=wheels.s3_object_key,
                local_file="/opt/skybridge/wheelhouse.zip",
            )
            unpack_wheels = [f"rm -rf {WHEELHOUSE} && unzip -q {wheels_zip} -d {WHEELHOUSE}"]
            index = f"--no-index --find-links {WHEELHOUSE}/wheels "
        settings = {
            "SKYBRIDGE_DATABASE_URL": "mysql+pymysql://placeholder/skybridge",
            "SKYBRIDGE_DATABASE_SECRET_ARN": secret.secret_arn,
            "SKYBRIDGE_DATABASE_TLS_CA": RDS_CA,
            "SKYBRIDGE_TOKEN_SOURCE": "aws-wif",
            "SKYBRIDGE_GCP_CREDENTIAL_CONFIG": "/etc/skybridge/gcp-credential-config.json",
            "SKYBRIDGE_METRICS": "emf",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }
        fetch = [
            "#!/bin/bash",
            "# Reads the GCP target from SSM at every service start (redeploys need no rebuild).",
            "set -euo pipefail",
            'get() { aws ssm get-parameter --region "$AWS_REGION" --name "$1" '
            "--query Parameter.Value --output text; }",
            f"get {self.parameters['gcp-credential-config'].parameter_name} "
            "> /etc/skybridge/gcp-credential-config.json",
            "{",
            f'  echo "SKYBRIDGE_INGEST_URL=$(get {self.parameters["ingest-url"].parameter_name})"',
            '  echo "SKYBRIDGE_GCP_SERVICE_ACCOUNT='
            f'$(get {self.parameters["gcp-service-account"].parameter_name})"',
            "} > /etc/skybridge/gcp.env",
        ]
        api = shlex.join(commands.api_argv(f"0.0.0.0:{APP_PORT}", workers=4, python=PYTHON))
        units = {
            "skybridge-api": (
                api.replace("%", "%%"),
                f"ExecStartPre={shlex.join(commands.migrate_argv(PYTHON))}",
            ),
            "skybridge-relay": (
                shlex.join(commands.relay_argv(PYTHON)),
                "ExecStartPre=/opt/skybridge/fetch-gcp-settings.sh",
            ),
        }
        agent = {
            "logs": {
                "logs_collected": {
                    "files": {
                        "collect_list": [
                            {
                                "file_path": f"/var/log/skybridge/{name}.log",
                                "log_group_name": f"{log_prefix}/{name}",
                                "log_stream_name": "{instance_id}",
                            }
                            for name in ("api", "relay")
                        ]
                    }
                }
            }
        }
        user_data.add_commands(
            "set -euxo pipefail",
            "dnf install -y python3.12 python3.12-pip unzip amazon-cloudwatch-agent",
            "mkdir -p /etc/skybridge /var/log/skybridge",
            f"rm -rf {APP_DIR} && unzip -q {zip_path} -d {APP_DIR}",
            *unpack_wheels,
            f"python3.12 -m venv {VENV}",
            f"{VENV}/bin/pip install --quiet {index}-r {APP_DIR}/requirements.txt",
            f"curl -fsSL {RDS_CA_URL} -o {RDS_CA}",
            "cat > /etc/skybridge/runtime.env <<'EOF'",
            *[f"{key}={value}" for key, value in settings.items()],
            "EOF",
            "cat > /opt/skybridge/fetch-gcp-settings.sh <<'EOF'",
            *fetch,
            "EOF",
            "chmod 0755 /opt/skybridge/fetch-gcp-settings.sh",
            "cat > /opt/aws/amazon-cloudwatch-agent/etc/skybridge.json <<'EOF'",
            json.dumps(agent),
            "EOF",
            "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config "
            "-m ec2 -s -c file:/opt/aws/amazon-cloudwatch-agent/etc/skybridge.json",
        )
        for name, (exec_start, pre) in units.items():
            short = name.removeprefix("skybridge-")
            user_data.add_commands(
                f"cat > /etc/systemd/system/{name}.service <<'EOF'",
                "[Unit]",
                f"Description=skybridge {short}",
                "After=network-online.target",
                "Wants=network-online.target",
                "[Service]",
                "EnvironmentFile=/etc/skybridge/runtime.env",
                "EnvironmentFile=-/etc/skybridge/gcp.env",
                f"Environment=PYTHONPATH={APP_DIR}",
                f"WorkingDirectory={APP_DIR}",
                pre,
                f"ExecStart={exec_start}",
                "Restart=always",
                "RestartSec=2",
                "KillSignal=SIGTERM",
                "TimeoutStopSec=40",
                f"StandardOutput=append:/var/log/skybridge/{short}.log",
                f"StandardError=append:/var/log/skybridge/{short}.log",
                "[Install]",
                "WantedBy=multi-user.target",
                "EOF",
            )
        user_data.add_commands(
            "/opt/skybridge/fetch-gcp-settings.sh",
            "systemctl daemon-reload",
            "systemctl enable --now skybridge-api skybridge-relay",
        )
        return user_data
