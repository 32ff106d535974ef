"""cdk-nag findings we accept, each on the narrowest construct, each with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

from environments import Environment


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def acknowledge(stack: Stack, environment: Environment) -> None:
    network = stack.node.find_child("Network").node.find_child("Vpc")
    for endpoint in (
        "Ssm",
        "SsmMessages",
        "Ec2Messages",
        "SecretsManager",
        "Logs",
        "Monitoring",
        "Sts",
    ):
        _ack(
            network.node.find_child(endpoint),
            "AwsSolutions-EC23",
            "VPC endpoint security group: admits HTTPS from the VPC's own CIDR only; the rule "
            "cannot evaluate the CIDR because it is a CloudFormation reference",
        )
    api = stack.node.find_child("Api")
    _ack(
        api.node.find_child("LoadBalancer"),
        "AwsSolutions-EC23",
        "the internet-facing load balancer is the API's public entry point (80/443 only)",
    )
    _ack(
        api.node.find_child("AccessLogs"),
        "AwsSolutions-S1",
        "this bucket holds the load balancer's access logs; logging it into itself would loop",
    )
    role = api.node.find_child("InstanceRole")
    _ack(
        role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
        "Session Manager replaces SSH: the instances open no inbound port for administration",
    )
    _ack(
        role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/CloudWatchAgentServerPolicy]",
        "the CloudWatch agent ships the API's and relay's logs and EMF metrics",
    )
    bucket = f"cdk-hnb659fds-assets-{environment.aws.account}-{environment.aws.region}"
    for applies_to in (
        "Action::s3:GetObject*",
        "Action::s3:GetBucket*",
        "Action::s3:List*",
        f"Resource::arn:aws:s3:::{bucket}/*",
    ):
        _ack(
            role,
            f"AwsSolutions-IAM5[{applies_to}]",
            "Asset.grant_read: read-only access to the CDK asset bucket holding the runtime "
            "artifact the instances install at boot",
        )

    database = stack.node.find_child("Database")
    _ack(
        database,
        "AwsSolutions-RDS11",
        "default MySQL port: the database sits in isolated subnets and its security group "
        "admits only the API instances",
    )
    _ack(
        database.node.find_child("Instance").node.find_child("MonitoringRole"),
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AmazonRDSEnhancedMonitoringRole]",
        "AWS's own policy for RDS enhanced monitoring, scoped by AWS to exactly that",
    )
    if not environment.production:
        _ack(
            database,
            "AwsSolutions-RDS3",
            f"{environment.name} runs single-AZ to halve its cost; production is Multi-AZ",
        )
        _ack(
            database,
            "AwsSolutions-RDS10",
            f"{environment.name} is disposable; production has deletion protection",
        )
    for child in stack.node.children:
        if child.node.id.startswith("LogRetention"):
            _ack(
                child,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's log-retention function (sets retention on the log groups RDS creates) "
                "writes only its own logs",
            )
            _ack(
                child,
                "AwsSolutions-IAM5[Resource::*]",
                "CDK's log-retention function must reach log groups that RDS names and creates "
                "at deploy time",
            )
