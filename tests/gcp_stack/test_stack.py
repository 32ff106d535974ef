"""The desired state itself (no API calls): what each environment declares."""

from __future__ import annotations

import pytest

import environments
from gcp_stack import stack
from gcp_stack.names import Names
from gcp_stack.resources import STACK_LABEL, Context, Resource
from runtime.settings import Settings


@pytest.fixture(scope="module")
def dev() -> dict[str, Resource]:
    return {r.key: r for r in stack.build(environments.load("dev"))}


@pytest.fixture(scope="module")
def ctx(artifact) -> Context:
    return Context(api=None, project="skybridge-dev-000000", region="europe-west1",
                   artifact=artifact, project_number="1")  # fmt: skip


def test_ingest_is_http_and_publishes_to_the_submissions_topic(dev, ctx):
    body = dev["function/skybridge-dev-ingest"].body(ctx)
    assert "eventTrigger" not in body
    assert body["buildConfig"] == {
        "runtime": "python312",
        "entryPoint": "ingest",
        "serviceAccount": "projects/skybridge-dev-000000/serviceAccounts/"
        "skybridge-dev-build@skybridge-dev-000000.iam.gserviceaccount.com",
    }
    environment = body["serviceConfig"]["environmentVariables"]
    assert environment["SKYBRIDGE_TOPIC"] == (
        "projects/skybridge-dev-000000/topics/skybridge-dev-submissions"
    )
    assert body["serviceConfig"]["serviceAccountEmail"].startswith("skybridge-dev-ingest@")


def test_store_is_triggered_by_the_topic_and_retried_on_failure(dev, ctx):
    body = dev["function/skybridge-dev-store"].body(ctx)
    assert body["buildConfig"]["entryPoint"] == "store"
    assert body["eventTrigger"]["pubsubTopic"].endswith("/topics/skybridge-dev-submissions")
    assert body["eventTrigger"]["retryPolicy"] == "RETRY_POLICY_RETRY"
    environment = body["serviceConfig"]["environmentVariables"]
    assert environment["SKYBRIDGE_BUCKET"] == "skybridge-dev-000000-skybridge-dev-assets"


def test_function_settings_are_ones_the_runtime_reads(dev, ctx):
    known = {f"SKYBRIDGE_{name.upper()}" for name in Settings.model_fields}
    for key in ("function/skybridge-dev-ingest", "function/skybridge-dev-store"):
        variables = dev[key].body(ctx)["serviceConfig"]["environmentVariables"]
        assert variables.keys() <= known, variables.keys() - known


def test_runtime_and_delivery_attempts_come_from_the_environment(ctx):
    prod = {r.key: r for r in stack.build(environments.load("prod"))}
    assert prod["function/skybridge-prod-ingest"].body(ctx)["buildConfig"]["runtime"] == "python313"
    assert prod["trigger_dead_letter_policy/skybridge-prod-store"].max_delivery_attempts == 10


def test_labellable_resources_carry_the_stack_label(dev, ctx):
    for resource in dev.values():
        if resource.kind in {"topic", "subscription", "bucket", "function"}:
            assert resource.body(ctx)["labels"][STACK_LABEL] == "skybridge-dev", resource.key


def test_uptime_check_only_when_the_api_url_is_known(dev):
    assert not [key for key in dev if key.startswith("uptime_check/")]
    with_url = stack.build(environments.load("dev"), api_url="http://alb.example.com")
    (check,) = [r for r in with_url if r.key.startswith("uptime_check/")]
    assert check.spec["httpCheck"]["port"] == 80


def test_uptime_alert_fires_on_the_checks_failures_across_locations(ctx):
    """Google's uptime-check policy: the check's own check_passed series (by its check id,
    an output of the check), each aligned to its latest result, failures counted across
    checker locations; ALIGN_NEXT_OLDER and REDUCE_COUNT_FALSE apply to a GAUGE BOOL."""
    with_url = {r.key: r for r in stack.build(environments.load("dev"),
                                              api_url="https://api.example.com")}  # fmt: skip
    (check,) = [k for k in with_url if k.startswith("uptime_check/")]
    alert = with_url["alert_policy/skybridge-dev: API unreachable"]
    assert check in alert.depends_on
    (condition,) = alert.spec["conditions"]
    threshold = condition["conditionThreshold"]
    assert f'metric.labels.check_id="{{output:{check}:check_id}}"' in threshold["filter"]
    assert (
        'metric.type="monitoring.googleapis.com/uptime_check/check_passed"' in (threshold["filter"])
    )
    (aggregation,) = threshold["aggregations"]
    assert (aggregation["perSeriesAligner"], aggregation["crossSeriesReducer"]) == (
        "ALIGN_NEXT_OLDER",
        "REDUCE_COUNT_FALSE",
    )
    assert (threshold["comparison"], threshold["thresholdValue"]) == ("COMPARISON_GT", 1)
    live = {"name": "projects/p/uptimeCheckConfigs/skybridge-dev-api-healthz-x1Y2"}
    assert with_url[check].outputs(live)["check_id"] == "skybridge-dev-api-healthz-x1Y2"


def test_dashboard_covers_functions_pubsub_dead_letters_and_objects(dev, ctx):
    tiles = dev["dashboard/skybridge-dev"].body(ctx)["mosaicLayout"]["tiles"]
    titles = {tile["widget"]["title"] for tile in tiles}
    assert {"Function executions", "Function latency (p99)", "Function errors (5xx)",
            "Pub/Sub publish rate", "Undelivered messages", "Oldest unacked age (s)",
            "Dead letters", "Objects written", "Receipts published",
            "Receipts waiting for AWS (oldest, s)"} == titles  # fmt: skip


def test_alerts_cover_errors_backlog_and_dead_letters(dev):
    alerts = {key for key in dev if key.startswith("alert_policy/")}
    assert alerts == {
        "alert_policy/skybridge-dev: function errors",
        "alert_policy/skybridge-dev: delivery backlog",
        "alert_policy/skybridge-dev: dead letters",
        "alert_policy/skybridge-dev: receipts not consumed",
    }


def test_store_publishes_receipts_to_the_topic_the_relay_pulls_from(dev, ctx):
    environment = dev["function/skybridge-dev-store"].body(ctx)["serviceConfig"][
        "environmentVariables"
    ]
    assert environment["SKYBRIDGE_RECEIPTS_TOPIC"] == (
        "projects/skybridge-dev-000000/topics/skybridge-dev-receipts"
    )
    subscription = dev["subscription/skybridge-dev-receipts-relay"].body(ctx)
    assert subscription["topic"] == environment["SKYBRIDGE_RECEIPTS_TOPIC"]
    assert "pushConfig" not in subscription  # pull: AWS has no inbound endpoint for it


def test_receipts_access_is_least_privilege(dev):
    """store may only publish receipts; the relay may only subscribe to its subscription."""
    grants = [r for r in dev.values() if r.kind == "iam_member"]
    on_receipts = {
        (g.target, g.role, g.member.split(":", 1)[1].split("@")[0])
        for g in grants
        if "receipts" in g.target
    }
    assert on_receipts == {
        ("topic:skybridge-dev-receipts", "roles/pubsub.publisher", "skybridge-dev-store"),
        (
            "subscription:skybridge-dev-receipts-relay",
            "roles/pubsub.subscriber",
            "skybridge-dev-relay",
        ),
    }
    relay_roles = {(g.target, g.role) for g in grants if "skybridge-dev-relay@" in g.member}
    assert relay_roles == {
        ("run_service:skybridge-dev-ingest", "roles/run.invoker"),
        ("subscription:skybridge-dev-receipts-relay", "roles/pubsub.subscriber"),
    }
    assert not [g for g in grants if g.target == "project" and "pubsub" in g.role]


def test_builds_run_as_their_own_account_with_exactly_the_roles_a_build_needs(dev):
    build = "serviceAccount:skybridge-dev-build@skybridge-dev-000000.iam.gserviceaccount.com"
    roles = {r.role for r in dev.values() if r.kind == "iam_member" and r.member == build}
    assert roles == {"roles/logging.logWriter", "roles/artifactregistry.writer",
                     "roles/storage.objectViewer"}  # fmt: skip
    targets = {r.target for r in dev.values() if r.kind == "iam_member" and r.member == build}
    assert targets == {"project"}


def test_pubsub_agent_may_mint_tokens_for_the_push_account(dev):
    (grant,) = [r for r in dev.values() if r.kind == "iam_member"
                and r.role == "roles/iam.serviceAccountTokenCreator"]  # fmt: skip
    assert grant.member == stack.PUBSUB_AGENT
    assert (
        grant.target
        == "service_account:skybridge-dev-store@skybridge-dev-000000.iam.gserviceaccount.com"
    )


def test_backlog_alert_watches_only_the_trigger_subscription(dev, ctx):
    alert = dev["alert_policy/skybridge-dev: delivery backlog"]
    filter_ = alert.spec["conditions"][0]["conditionThreshold"]["filter"]
    assert "{output:trigger_dead_letter_policy/skybridge-dev-store:subscription}" in filter_
    assert "dead-letter" not in filter_
    assert "trigger_dead_letter_policy/skybridge-dev-store" in alert.depends_on


def test_latency_percentile_aligns_a_distribution_to_deltas(dev, ctx):
    tiles = dev["dashboard/skybridge-dev"].body(ctx)["mosaicLayout"]["tiles"]
    (latency,) = [t["widget"] for t in tiles if t["widget"]["title"] == "Function latency (p99)"]
    query = latency["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]
    assert query["aggregation"]["perSeriesAligner"] == "ALIGN_DELTA"
    assert query["aggregation"]["crossSeriesReducer"] == "REDUCE_PERCENTILE_99"


@pytest.mark.parametrize(("env", "project"), [("a" * 16, "p" + "x" * 28 + "1"), ("dev", "abcdef")])
def test_derived_ids_fit_googles_limits(env, project):
    names = Names(f"skybridge-{env}", project)
    assert len(names.bucket) <= 63 and names.bucket[-1].isalnum()
    for role in ("ingest", "store", "relay", "build"):
        assert 6 <= len(names.account(role)) <= 30 and names.account(role)[-1].isalnum()
    assert 4 <= len(names.pool) <= 32 and 4 <= len(names.provider) <= 32
    assert len({names.account(role) for role in ("ingest", "store", "relay", "build")}) == 4


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_objects_expire_when_the_aws_side_purges_their_rows(name, ctx):
    """One setting for both clouds: the bucket deletes an object at the age at which the
    relay purges its stored submission (runtime/retention.py)."""
    environment = environments.load(name)
    (bucket,) = [r for r in stack.build(environment) if r.key.startswith("bucket/")]
    rules = bucket.body(ctx)["lifecycle"]["rule"]
    live = [r for r in rules if r["action"]["type"] == "Delete" and "age" in r["condition"]]
    assert [rule["condition"]["age"] for rule in live] == [environment.retention.stored_days]


def test_keys_hold_the_project_number_once_it_is_known():
    known = {r.key for r in stack.build(environments.load("dev"), project_number="424242")}
    placeholder = {r.key for r in stack.build(environments.load("dev"))}
    agent = "serviceAccount:service-424242@gcp-sa-pubsub.iam.gserviceaccount.com"
    assert any(agent in key for key in known)
    assert not any("{project_number}" in key for key in known)
    assert any("{project_number}" in key for key in placeholder)  # synth: no cloud to ask
