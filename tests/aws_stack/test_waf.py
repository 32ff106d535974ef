"""The WAF web ACL on the API's load balancer: rate per client IP (per environment), the
body size, AWS's managed rules; associated with the ALB. cdk-nag and cfn-lint run over the
same templates in test_stack.py."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk.assertions import Match

import environments
from runtime.settings import Settings


def web_acl(template) -> dict:
    (acl,) = template.find_resources("AWS::WAFv2::WebACL").values()
    return acl["Properties"]


def rules(template) -> dict[str, dict]:
    return {rule["Name"]: rule for rule in web_acl(template)["Rules"]}


def test_the_web_acl_is_regional_allows_by_default_and_guards_the_load_balancer(dev_template):
    acl = web_acl(dev_template)
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    ((acl_id, _),) = dev_template.find_resources("AWS::WAFv2::WebACL").items()
    ((alb_id, _),) = dev_template.find_resources(
        "AWS::ElasticLoadBalancingV2::LoadBalancer"
    ).items()
    dev_template.has_resource_properties(
        "AWS::WAFv2::WebACLAssociation",
        {"ResourceArn": {"Ref": alb_id}, "WebACLArn": {"Fn::GetAtt": [acl_id, "Arn"]}},
    )


def test_the_rate_limit_per_ip_is_the_environments(dev_template, prod):
    prod_template, _ = prod
    for template, name in ((dev_template, "dev"), (prod_template, "prod")):
        rate = rules(template)["RatePerClientIp"]
        expected = environments.load(name).limits.requests_per_ip_per_5_minutes
        assert rate["Statement"]["RateBasedStatement"] == {
            "AggregateKeyType": "IP",
            "Limit": expected,
            "EvaluationWindowSec": 300,
        }
        response = rate["Action"]["Block"]["CustomResponse"]
        assert response["ResponseCode"] == 429
        assert {"Name": "Retry-After", "Value": "300"} in response["ResponseHeaders"]
        body = web_acl(template)["CustomResponseBodies"][response["CustomResponseBodyKey"]]
        assert json.loads(body["Content"])["status"] == 429
    dev_limit = environments.load("dev").limits.requests_per_ip_per_5_minutes
    prod_limit = environments.load("prod").limits.requests_per_ip_per_5_minutes
    assert dev_limit != prod_limit, "the thresholds are per environment"


def test_the_body_size_rule_refuses_what_the_app_would_refuse(dev_template):
    size = rules(dev_template)["BodySize"]["Statement"]["SizeConstraintStatement"]
    assert size["FieldToMatch"] == {"SingleHeader": {"Name": "content-length"}}
    assert size["ComparisonOperator"] == "GT"
    limit = Settings().max_body_bytes
    # A Content-Length with more digits than the limit is a larger body than the limit.
    assert size["Size"] == len(str(limit))
    assert 10 ** size["Size"] > limit


def test_the_managed_rules_count_what_would_block_json_submissions(dev_template):
    common = rules(dev_template)["AWSManagedRulesCommonRuleSet"]
    statement = common["Statement"]["ManagedRuleGroupStatement"]
    assert statement["VendorName"] == "AWS"
    counted = {o["Name"] for o in statement["RuleActionOverrides"]}
    assert "SizeRestrictions_BODY" in counted  # it blocks every body over 8 KB
    assert "AWSManagedRulesKnownBadInputsRuleSet" in rules(dev_template)
    dev_template.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {"VisibilityConfig": Match.object_like({"CloudWatchMetricsEnabled": True})},
    )


def test_a_rate_limit_below_wafs_minimum_is_a_clear_error(tmp_path):
    source = (environments.DIRECTORY / "dev.toml").read_text()
    (tmp_path / "dev.toml").write_text(
        re.sub(r"requests_per_ip_per_5_minutes = \d+", "requests_per_ip_per_5_minutes = 5", source)
    )
    with pytest.raises(environments.EnvironmentFileError, match="requests_per_ip_per_5_minutes"):
        environments.load("dev", tmp_path)
