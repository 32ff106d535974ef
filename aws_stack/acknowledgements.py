"""cdk-nag and checkov findings we accept, each on the narrowest construct, each with its
reason (checkov's go into the resource's `Metadata.checkov.skip`, where it reads them)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

from environments import Environment


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def _skip(scope: IConstruct, check: str, reason: str) -> None:
    """A checkov check that does not apply to `scope`'s resource, and why."""
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    assert isinstance(resource, CfnResource), scope.node.path
    existing = resource.get_metadata("checkov") or {}
    skips = [*existing.get("skip", []), {"id": check, "comment": reason}]
    resource.add_metadata("checkov", {"skip": skips})


def acknowledge(stack: Stack, environment: Environment) -> None:
    _acknowledge_cdk_nag(stack, environment)
    _acknowledge_checkov(stack, environment)


def _acknowledge_cdk_nag(stack: Stack, environment: Environment) -> None:
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


def _acknowledge_checkov(stack: Stack, environment: Environment) -> None:
    api = stack.node.find_child("Api")
    for name in ("ApiLogs", "RelayLogs"):
        _skip(
            api.node.find_child(name),
            "CKV_AWS_158",
            "CloudWatch Logs encrypts every log group at rest; a customer key would add a key "
            "policy for the logs service and cost, for operational logs without submissions",
        )
    _skip(
        stack.node.find_child("Network").node.find_child("FlowLogs"),
        "CKV_AWS_158",
        "VPC flow logs: encrypted at rest by CloudWatch Logs; no customer data in them",
    )
    access_logs = api.node.find_child("AccessLogs")
    _skip(
        access_logs,
        "CKV_AWS_18",
        "this bucket holds the load balancer's access logs; logging it into itself would loop",
    )
    _skip(
        access_logs,
        "CKV_AWS_21",
        "access logs are written once and expire after 90 days: versions would only keep "
        "expired logs",
    )
    _skip(
        api.node.find_child("LoadBalancer").node.find_child("SecurityGroup"),
        "CKV_AWS_260",
        "the internet-facing load balancer is the API's entry point; with a certificate, "
        "port 80 only redirects to 443",
    )
    if not environment.aws.certificate_arn:
        http = api.node.find_child("LoadBalancer").node.find_child("Http")
        for check in ("CKV_AWS_2", "CKV_AWS_103"):
            _skip(
                http,
                check,
                f"{environment.name} has no certificate (aws.certificate_arn): HTTP only; "
                "with one the listener is HTTPS (TLS 1.2+) and port 80 redirects",
            )
    _skip(
        stack.node.find_child("AlarmTopicKey"),
        "CKV_AWS_33",
        "the one wildcard statement is narrowed by aws:PrincipalArn to Auto Scaling's "
        "service-linked role in this account (KMS refuses a principal that does not exist "
        "yet, and the account's first group creates that role)",
    )
    database = stack.node.find_child("Database").node.find_child("Instance")
    _skip(
        database,
        "CKV_AWS_161",
        "password authentication from the rotated Secrets Manager secret; IAM tokens cap new "
        "connections per second, and the pool reconnects after every failover",
    )
    _skip(
        database.node.find_child("Secret"),
        "CKV_AWS_149",
        "encrypted with Secrets Manager's AWS-managed key; the rotation function would also "
        "need a customer key's grant, for no gain in who can read it (IAM decides that)",
    )
    if not environment.aws.db_multi_az:
        _skip(
            database,
            "CKV_AWS_157",
            f"{environment.name} runs single-AZ to halve its cost (aws.db_multi_az); "
            "production is Multi-AZ",
        )
    # CDK's own deploy-time functions (custom-resource providers): invoked only by
    # CloudFormation during a deploy, so a dead-letter queue, a VPC and reserved
    # concurrency do not apply.
    for resource in stack.node.find_all():
        if not isinstance(resource, CfnResource):
            continue
        path = resource.node.path
        provider = "CustomResourceProvider" in path or "/LogRetention" in path
        if provider and resource.cfn_resource_type == "AWS::Lambda::Function":
            for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"):
                _skip(resource, check, "CDK's deploy-time custom-resource function")
        if "/LogRetention" in path and resource.cfn_resource_type == "AWS::IAM::Policy":
            _skip(
                resource,
                "CKV_AWS_111",
                "CDK's log-retention function sets retention on log groups RDS names at "
                "deploy time (logs:PutRetentionPolicy on *)",
            )
