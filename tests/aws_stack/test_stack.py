"""The synthesized AWS template: one behaviour per test."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import aws_rds as rds
from aws_cdk.assertions import Capture, Match

import environments
from aws_stack.app import PLACEHOLDER
from deployment.database_version import newest_mysql_84
from deployment.packaging import WheelhouseError
from tests.aws_stack.conftest import synth


def resources(template, kind: str) -> dict:
    return template.find_resources(kind)


def one(template, kind: str) -> dict:
    (value,) = resources(template, kind).values()
    return value


def test_launch_template_requires_imdsv2_with_a_hop_limit_of_one(dev_template):
    dev_template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": Match.object_like(
                {
                    "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
                }
            )
        },
    )


def test_instance_volumes_are_encrypted(dev_template):
    dev_template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": Match.object_like(
                {
                    "BlockDeviceMappings": [
                        Match.object_like({"Ebs": Match.object_like({"Encrypted": True})})
                    ]
                }
            )
        },
    )


def test_instances_are_graviton_on_amazon_linux_2023(dev_template, dev):
    dev_template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {"LaunchTemplateData": Match.object_like({"InstanceType": "t4g.small"})},
    )
    parameters = json.dumps(dev[1].get("Parameters", {}))
    assert "al2023-ami-kernel-default-arm64" in parameters or "al2023" in parameters


def test_database_is_mysql_84_private_encrypted(dev_template):
    dev_template.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "mysql",
            "EngineVersion": newest_mysql_84(),
            "AutoMinorVersionUpgrade": True,
            "StorageEncrypted": True,
            "PubliclyAccessible": False,
            "DBInstanceClass": "db.t4g.micro",
            "EnableCloudwatchLogsExports": ["error", "slowquery"],
        },
    )


def test_database_requires_tls(dev_template):
    dev_template.has_resource_properties(
        "AWS::RDS::DBParameterGroup",
        {"Parameters": Match.object_like({"require_secure_transport": "1"})},
    )


def test_the_exported_slow_query_log_is_turned_on(dev_template):
    dev_template.has_resource_properties(
        "AWS::RDS::DBParameterGroup",
        {"Parameters": Match.object_like({"slow_query_log": "1", "log_output": "FILE"})},
    )


def test_the_default_engine_is_the_newest_84_minor_cdk_knows():
    newest = tuple(int(part) for part in newest_mysql_84().split("."))
    assert newest[:2] == (8, 4) and newest[2] >= 10
    for name in dir(rds.MysqlEngineVersion):
        if name.startswith("VER_8_4_"):
            assert int(name.rsplit("_", 1)[1]) <= newest[2]


def test_an_environment_can_pin_the_engine_version(tmp_path, monkeypatch):
    import environments

    real = environments.load

    def pinned(name: str, directory=environments.DIRECTORY):
        environment = real(name, directory)
        aws = environment.aws.model_copy(update={"db_engine_version": "8.4.6"})
        return environment.model_copy(update={"aws": aws})

    monkeypatch.setattr(environments, "load", pinned)
    template, _ = synth("dev", tmp_path)
    template.has_resource_properties("AWS::RDS::DBInstance", {"EngineVersion": "8.4.6"})


def test_database_secret_is_generated_and_rotated(dev_template):
    dev_template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"SecretStringTemplate": Match.any_value()})},
    )
    dev_template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule",
        {"RotationRules": {"ScheduleExpression": "rate(30 days)"}},
    )


def test_stateful_logical_ids_are_stable(dev_template):
    assert list(resources(dev_template, "AWS::RDS::DBInstance")) == ["DatabaseInstanceAA8A5FDE"]
    assert list(resources(dev_template, "AWS::SecretsManager::Secret")) == [
        "skybridgedevDatabaseInstanceSecretE911CADE3fdaad7efa858a3daf9490cf0a702aeb"
    ]


def test_only_load_balancer_reaches_instances_and_only_instances_reach_database(dev_template):
    ingress = resources(dev_template, "AWS::EC2::SecurityGroupIngress")
    rules = {
        (
            json.dumps(rule["Properties"]["FromPort"]),
            json.dumps(rule["Properties"]["SourceSecurityGroupId"]),
        )
        for rule in ingress.values()
        if "SourceSecurityGroupId" in rule["Properties"]
    }
    app_rules = {rule for rule in rules if rule[0] == "8000"}
    db_rules = {rule for rule in rules if "Endpoint.Port" in rule[0]}
    assert len(rules) == 3, rules
    assert len(app_rules) == 1 and "LoadBalancerSecurityGroup" in next(iter(app_rules))[1]
    # The instances, and the secret-rotation function, which must log in to rotate.
    sources = sorted(
        re.sub(r"[0-9A-F]{8}$", "", json.loads(r[1])["Fn::GetAtt"][0]) for r in db_rules
    )
    assert sources == [
        "ApiInstanceSecurityGroup",
        "DatabaseInstanceRotationSingleUserSecurityGroup",
    ]
    instance_group = next(
        group
        for key, group in resources(dev_template, "AWS::EC2::SecurityGroup").items()
        if "InstanceSecurityGroup" in key
    )
    assert "SecurityGroupIngress" not in instance_group["Properties"]


def test_load_balancer_and_group_judge_instances_by_liveness(dev_template):
    # A database failover must not make the group replace every instance.
    dev_template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"HealthCheckPath": "/livez", "Port": 8000},
    )
    group = one(dev_template, "AWS::AutoScaling::AutoScalingGroup")
    assert group["Properties"]["HealthCheckType"] == "ELB"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_listener_refuses_internal_paths_to_the_internet(stack, request):
    template = request.getfixturevalue(f"{stack}_template")
    rules = resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule")
    refused = [
        rule["Properties"]
        for rule in rules.values()
        if rule["Properties"]["Actions"][0]["Type"] == "fixed-response"
    ]
    (rule,) = refused
    assert rule["Priority"] == 1
    (condition,) = rule["Conditions"]
    assert {"/readyz", "/livez"} <= set(condition["PathPatternConfig"]["Values"])
    assert rule["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    # On the listener that forwards to the instances (HTTPS in prod; 80 only redirects).
    listener = template.to_json()["Resources"][rule["ListenerArn"]["Ref"]]
    assert listener["Properties"]["Port"] == (443 if stack == "prod" else 80)


def test_cloudformation_waits_for_each_instance_to_signal(dev_template):
    group = one(dev_template, "AWS::AutoScaling::AutoScalingGroup")
    assert group["CreationPolicy"]["ResourceSignal"] == {"Count": 1, "Timeout": "PT15M"}
    rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert rolling["WaitOnResourceSignals"] is True
    assert rolling["PauseTime"] == "PT15M"
    assert rolling["MaxBatchSize"] == 1
    assert str(rolling["MinInstancesInService"]) == group["Properties"]["MinSize"] == "1"
    # The group waits out the boot before judging health.
    assert group["Properties"]["HealthCheckGracePeriod"] == 900


def test_the_boot_signals_the_group_cloudformation_waits_for(dev_template):
    (logical,) = resources(dev_template, "AWS::AutoScaling::AutoScalingGroup")
    script = _user_data(dev_template)
    assert f"--resource {logical} " in script and "--stack skybridge-dev " in script
    assert "aws-cfn-bootstrap" in script and "trap on_exit EXIT" in script


def test_auto_scaling_service_linked_role_may_use_the_alarm_key(dev_template):
    key = one(dev_template, "AWS::KMS::Key")
    (statement,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "AutoScalingServiceLinkedRole"
    ]  # fmt: skip
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    arn = json.dumps(statement["Condition"]["StringEquals"]["aws:PrincipalArn"])
    assert "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" in arn


def test_every_alarm_notifies_the_topic(dev_template):
    (topic,) = resources(dev_template, "AWS::SNS::Topic")
    alarms = resources(dev_template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 6
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]


def test_alarm_topic_is_encrypted(dev_template):
    dev_template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_instance_role_has_the_fixed_name_gcp_trusts(dev_template):
    dev_template.has_resource_properties("AWS::IAM::Role", {"RoleName": "skybridge-dev-relay"})


def test_vpc_has_flow_logs(dev_template):
    dev_template.resource_count_is("AWS::EC2::FlowLog", 1)


def test_load_balancer_logs_access(dev_template):
    dev_template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "LoadBalancerAttributes": Match.array_with(
                [{"Key": "access_logs.s3.enabled", "Value": "true"}]
            )
        },
    )


def test_dev_is_single_az_and_deletable(dev_template):
    instance = one(dev_template, "AWS::RDS::DBInstance")
    assert instance["Properties"]["MultiAZ"] is False
    assert instance["Properties"]["DeletionProtection"] is False
    assert instance["DeletionPolicy"] == "Delete"


def test_prod_is_multi_az_protected_and_snapshotted(prod_template):
    instance = one(prod_template, "AWS::RDS::DBInstance")
    assert instance["Properties"]["MultiAZ"] is True
    assert instance["Properties"]["DeletionProtection"] is True
    assert instance["DeletionPolicy"] == "Snapshot"


def test_prod_serves_https_and_redirects_http(prod_template):
    prod_template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 443, "Protocol": "HTTPS"}
    )
    prod_template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "DefaultActions": [
                Match.object_like(
                    {"Type": "redirect", "RedirectConfig": Match.object_like({"Port": "443"})}
                )
            ],
        },
    )


def test_gcp_outputs_reach_ssm_parameters(prod_template):
    prod_template.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": "/skybridge-prod/ingest-url", "Value": "https://ingest-abc-ew.a.run.app/"},
    )
    prod_template.has_resource_properties(
        "AWS::SSM::Parameter",
        {
            "Name": "/skybridge-prod/gcp-service-account",
            "Value": Match.string_like_regexp("^relay@"),
        },
    )


def test_without_gcp_outputs_values_are_marked_placeholders(dev_template):
    dev_template.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": "/skybridge-dev/ingest-url", "Value": Match.string_like_regexp(PLACEHOLDER)},
    )


def test_user_data_installs_python312_and_runs_api_and_relay_units(dev_template):
    user_data = Capture()
    dev_template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {"LaunchTemplateData": Match.object_like({"UserData": user_data})},
    )
    script = json.dumps(user_data.as_object())
    for needle in (
        "retry dnf install -y aws-cfn-bootstrap python3.12",
        "skybridge-api.service",
        "skybridge-relay.service",
        "gunicorn",
        "runtime.relay",
        "runtime.db migrate",
        "SKYBRIDGE_TOKEN_SOURCE=aws-wif",
        "SKYBRIDGE_METRICS=emf",
        "amazon-cloudwatch-agent",
    ):
        assert needle in script, needle


def _user_data(template) -> str:
    user_data = Capture()
    template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {"LaunchTemplateData": Match.object_like({"UserData": user_data})},
    )
    return json.dumps(user_data.as_object())


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_the_units_get_the_environments_limits_and_retention(name, request):
    environment = environments.load(name)
    script = _user_data(request.getfixturevalue(f"{name}_template"))
    for line in (
        "SKYBRIDGE_TRUSTED_PROXY_HOPS=1",  # the ALB's X-Forwarded-For entry
        f"SKYBRIDGE_SUBMISSIONS_PER_MINUTE={environment.limits.submissions_per_ip_per_minute}",
        f"SKYBRIDGE_RETENTION_STORED_DAYS={environment.retention.stored_days}",
        f"SKYBRIDGE_RETENTION_FAILED_DAYS={environment.retention.failed_days}",
    ):
        assert f"\\n{line}\\n" in script, line


def test_without_a_wheelhouse_instances_install_from_the_package_index(dev_template):
    script = _user_data(dev_template)
    assert "--disable-pip-version-check -r /opt/skybridge/app/requirements.txt" in script
    assert "--no-index" not in script and "wheelhouse" not in script


def test_with_a_wheelhouse_instances_install_without_the_package_index(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    (wheelhouse / "wheels").mkdir(parents=True)
    (wheelhouse / "wheels" / "example-1.0-py3-none-any.whl").write_bytes(b"not a real wheel")
    (wheelhouse / "COMPLETE").write_text("")
    template, _ = synth("dev", tmp_path / "out", wheelhouse=str(wheelhouse))  # cdk-nag passes
    script = _user_data(template)
    assert (
        "--no-index --find-links /opt/skybridge/wheelhouse/wheels "
        "-r /opt/skybridge/app/requirements.txt"
    ) in script
    # Both the runtime zip and the wheelhouse are assets the instances download from S3.
    assert script.count("aws s3 cp") == 2
    assert "unzip -q /opt/skybridge/wheelhouse.zip -d /opt/skybridge/wheelhouse" in script


def test_an_incomplete_wheelhouse_is_refused_with_how_to_build_one(tmp_path):
    with pytest.raises(WheelhouseError, match=r"python -m deployment\.packaging wheelhouse"):
        synth("dev", tmp_path / "out", wheelhouse=str(tmp_path))


def test_stack_outputs(dev_template):
    outputs = dev_template.to_json()["Outputs"]
    assert {"ApiUrl", "DashboardUrl", "AlarmTopicArn", "DatabaseEndpoint"} <= set(outputs)


def test_dashboard_shows_runtime_metrics(dev_template):
    body = json.dumps(one(dev_template, "AWS::CloudWatch::Dashboard")["Properties"])
    for metric in ("OutboxBacklog", "OutboxOldestAgeSeconds", "Accepted", "Forwarded", "Failed"):
        assert metric in body


def test_cdk_nag_has_no_unacknowledged_findings(dev, prod):
    # Both fixtures synthesized with AwsSolutionsChecks attached, and synth raises on any
    # finding that is not acknowledged: reaching here means there were none.
    assert dev[1]["Resources"] and prod[1]["Resources"]


def test_cdk_nag_would_catch_a_finding(tmp_path):
    import aws_cdk as cdk
    import pytest
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Careless")
    s3.CfnBucket(stack, "Open")  # no encryption, no logging, no TLS policy
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_cfn_lint_finds_no_errors_and_only_explained_warnings(dev, prod):
    from pathlib import Path

    from cfnlint.api import ManualArgs, lint_file

    for template in (dev[1], prod[1]):
        matches = lint_file(Path(template["_path"]), ManualArgs(regions=["eu-west-1"]))
        errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]
        assert not errors, "\n".join(errors)
        unexplained = [
            f"{m.rule.id} {m.message}" for m in matches if m.rule.id not in EXPLAINED_WARNINGS
        ]
        assert not unexplained, "\n".join(unexplained)


# The warnings we accept, and why.
EXPLAINED_WARNINGS = {
    # The stack pins two AZs (<region>a, <region>b) so synth needs no context lookup and
    # no credentials; see SkybridgeStack.availability_zones.
    "W3010": "hard-coded availability zones",
    # Emitted inside CDK's own custom-resource providers (log retention, bucket auto-delete).
    "W3005": "redundant DependsOn",
}


def test_receipt_settings_reach_the_relay_through_ssm(prod_template, dev_template):
    prod_template.has_resource_properties(
        "AWS::SSM::Parameter",
        {
            "Name": "/skybridge-prod/receipts-subscription",
            "Value": "projects/skybridge-prod-000000/subscriptions/skybridge-prod-receipts-relay",
        },
    )
    # prod: 10 delivery attempts, a push retry budget of 2,430 s; the window is twice that.
    prod_template.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": "/skybridge-prod/confirm-window-seconds", "Value": "4860"},
    )
    user_data = json.dumps(dev_template.to_json())
    for variable in ("SKYBRIDGE_RECEIPTS_SUBSCRIPTION", "SKYBRIDGE_CONFIRM_WINDOW_SECONDS"):
        assert variable in user_data


def test_dashboard_and_alarms_watch_delivery_receipts(dev_template):
    body = json.dumps(one(dev_template, "AWS::CloudWatch::Dashboard")["Properties"])
    for metric in ("Stored", "EndToEndLatencyMs", "Unconfirmed", "UnconfirmedOldestAgeSeconds",
                   "ReceiptMismatch"):  # fmt: skip
        assert metric in body
    alarms = resources(dev_template, "AWS::CloudWatch::Alarm").values()
    by_metric = {alarm["Properties"].get("MetricName"): alarm["Properties"] for alarm in alarms}
    assert by_metric["ReceiptMismatch"]["Threshold"] == 1
    # dev: 5 attempts, a 150 s budget, so the 300 s floor; the alarm fires after two windows.
    assert by_metric["UnconfirmedOldestAgeSeconds"]["Threshold"] == 600
