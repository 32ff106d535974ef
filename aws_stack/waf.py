"""Abuse limits at the edge: an AWS WAF web ACL on the API's load balancer.

Nothing needs a credential to submit (by design), so a client is limited by what it can
send: a rate per client IP, a body size, and AWS's managed rules for what is hostile in
any request. The numbers are per environment (`[limits]` in environments/<env>.toml).

* Rate per IP: a rate-based rule over WAF's 5-minute window; past it WAF answers 429 with
  `Retry-After` and a problem+json body, like the app's own limits.
  https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based.html
* Body size: WAF inspects at most the first 8 KB of an ALB request body, so a size rule on
  the body cannot see a 256 KiB one. The rule reads the Content-Length header instead, by
  its length in characters: more digits than the app's limit has means a body of at least
  10^digits bytes, larger than anything the app accepts (the app answers 413 for what lies
  between: it reads the whole body).
  https://docs.aws.amazon.com/waf/latest/developerguide/web-request-body-inspection.html
* AWS managed common rule set and known bad inputs. The rules that inspect the body are
  set to count, not block: the API stores arbitrary JSON and never renders it, and
  SizeRestrictions_BODY would block every submission over 8 KB.
  https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html
"""

from __future__ import annotations

import json

from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from environments import LimitSettings
from runtime.settings import Settings

# Body-inspecting rules of AWSManagedRulesCommonRuleSet, counted rather than blocked.
COUNTED_COMMON_RULES = (
    "SizeRestrictions_BODY",
    "CrossSiteScripting_BODY",
    "GenericLFI_BODY",
    "GenericRFI_BODY",
)


def _problem(status: int, slug: str, title: str, detail: str) -> str:
    return json.dumps(
        {
            "type": f"https://skybridge.example/problems/{slug}",
            "title": title,
            "status": status,
            "detail": detail,
        }
    )


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


def _block(status: int, body_key: str, headers: dict[str, str] | None = None):
    return wafv2.CfnWebACL.RuleActionProperty(
        block=wafv2.CfnWebACL.BlockActionProperty(
            custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                response_code=status,
                custom_response_body_key=body_key,
                response_headers=[
                    wafv2.CfnWebACL.CustomHTTPHeaderProperty(name=name, value=value)
                    for name, value in (headers or {}).items()
                ]
                or None,
            )
        )
    )


def _managed(name: str, priority: int, counted: tuple[str, ...] = ()):
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in counted
                ]
                or None,
            )
        ),
        visibility_config=_visibility(name),
    )


class AbuseLimits(Construct):
    """A regional web ACL with the rules above, associated with `load_balancer`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        load_balancer: elbv2.IApplicationLoadBalancer,
        limits: LimitSettings,
        name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        window = 300
        retry_after = str(window)
        max_body_bytes = Settings.model_fields["max_body_bytes"].default
        digits = len(str(max_body_bytes))
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerClientIp",
                priority=0,
                action=_block(429, "TooManyRequests", {"Retry-After": retry_after}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP",
                        limit=limits.requests_per_ip_per_5_minutes,
                        evaluation_window_sec=window,
                    )
                ),
                visibility_config=_visibility("RatePerClientIp"),
            ),
            wafv2.CfnWebACL.RuleProperty(
                name="BodySize",
                priority=1,
                action=_block(413, "TooLarge"),
                statement=wafv2.CfnWebACL.StatementProperty(
                    size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
                        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(
                            single_header={"Name": "content-length"}
                        ),
                        comparison_operator="GT",
                        size=digits,
                        text_transformations=[
                            wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                        ],
                    )
                ),
                visibility_config=_visibility("BodySize"),
            ),
            _managed("AWSManagedRulesCommonRuleSet", 2, COUNTED_COMMON_RULES),
            _managed("AWSManagedRulesKnownBadInputsRuleSet", 3),
        ]
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=name,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            custom_response_bodies={
                "TooManyRequests": wafv2.CfnWebACL.CustomResponseBodyProperty(
                    content_type="APPLICATION_JSON",
                    content=_problem(
                        429,
                        "too-many-requests",
                        "Too Many Requests",
                        f"more than {limits.requests_per_ip_per_5_minutes} requests from "
                        f"this address in {window // 60} minutes; retry after the "
                        "indicated delay",
                    ),
                ),
                "TooLarge": wafv2.CfnWebACL.CustomResponseBodyProperty(
                    content_type="APPLICATION_JSON",
                    content=_problem(
                        413,
                        "too-large",
                        "Payload Too Large",
                        f"the request body is larger than {max_body_bytes} bytes",
                    ),
                ),
            },
            rules=rules,
            visibility_config=_visibility(name),
        )
        wafv2.CfnWebACLAssociation(
            self,
            "Association",
            resource_arn=load_balancer.load_balancer_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )
