"""The plan/apply engine against the fake control plane."""

from __future__ import annotations

import pytest

from gcp_stack.engine import Engine, diff
from gcp_stack.errors import ApplyFailed, GcpStackError
from gcp_stack.resources import Topic

FUNCTION_CREATE = "cloudfunctions.projects.locations.functions.create"
TOPIC_CREATE = "pubsub.projects.topics.create"
PROJECT = "skybridge-dev-000000"
BUCKET = f"storage:b/{PROJECT}-skybridge-dev-assets"
DEAD_LETTER_SUBSCRIPTION = f"pubsub:projects/{PROJECT}/subscriptions/skybridge-dev-dead-letter"


def deploy(engine: Engine) -> Engine:
    engine.apply(engine.plan())
    return engine


def test_deploy_then_plan_changes_nothing(make_engine):
    engine = deploy(make_engine())
    assert make_engine().plan().pending == []
    assert engine.outputs["function/skybridge-dev-ingest"]["url"].startswith("https://")


def test_destroy_removes_every_stack_resource(make_engine, deployed):
    destroy = make_engine().plan(destroy=True)
    assert {c.action for c in destroy.pending} == {"delete"}
    make_engine().apply(destroy, allow_destroy_data=True)
    remaining = [
        key
        for key, resource in deployed.store.items()
        if not key.startswith("serviceusage:") and resource.get("state") != "DELETED"
    ]
    # APIs stay enabled; Eventarc's own trigger and subscription go with the function.
    assert remaining == []
    assert {c.action for c in make_engine().plan().pending} == {"create"}


def test_deploy_after_destroy_undeletes_the_soft_deleted_identity_pool(make_engine, deployed):
    make_engine().apply(make_engine().plan(destroy=True), allow_destroy_data=True)
    pool = f"iam:projects/{PROJECT}/locations/global/workloadIdentityPools/skybridge-dev-aws"
    assert deployed.store[pool]["state"] == "DELETED"
    deploy(make_engine())
    assert deployed.store[pool]["state"] == "ACTIVE"
    assert deployed.store[f"{pool}/providers/aws-relay"]["state"] == "ACTIVE"
    assert make_engine().plan().pending == []


def test_transient_503_is_retried_transparently(make_engine, fake):
    fake.fail_next(FUNCTION_CREATE, 503)
    deploy(make_engine(deadline=10))
    assert fake.count("functions.create") == 3  # two functions, one retried once


def test_client_error_is_not_retried_and_names_the_resource(make_engine, fake):
    fake.fail_next(TOPIC_CREATE, 403, "permission denied")
    with pytest.raises(ApplyFailed) as failed:
        deploy(make_engine(deadline=10))
    (key,) = failed.value.failures
    assert key.startswith("topic/")
    assert f"create {key}: HTTP 403: permission denied" in str(failed.value)
    assert fake.count("topics.create") == 3  # three topics, none retried


def test_outage_mid_apply_stops_dependents_and_rerun_converges(make_engine, fake):
    for _ in range(200):
        fake.fail_next(FUNCTION_CREATE, 503)
    with pytest.raises(ApplyFailed) as failed:
        deploy(make_engine(deadline=0.3))
    assert "function/skybridge-dev-ingest" in failed.value.failures
    assert any("run_service:skybridge-dev-ingest" in key for key in failed.value.skipped)
    assert "HTTP 503" in str(failed.value)
    fake.faults.clear()
    rerun = make_engine().plan()
    assert {c.action for c in rerun.pending} == {"create"}
    assert "topic/skybridge-dev-submissions" not in {c.key for c in rerun.pending}
    make_engine().apply(rerun)
    assert make_engine().plan().pending == []


def test_create_whose_answer_was_lost_converges_without_a_rerun(make_engine, fake):
    fake.fail_next(FUNCTION_CREATE, 503, after_applying=True)  # created, then 503; retry: 409
    deploy(make_engine(deadline=10))
    assert make_engine().plan().pending == []


def test_failed_operation_names_the_resource_and_operation(make_engine, fake):
    fake.failed_operations.add(FUNCTION_CREATE)
    with pytest.raises(ApplyFailed) as failed:
        deploy(make_engine())
    error = failed.value.failures["function/skybridge-dev-store"]
    assert "create function/skybridge-dev-store" in str(error)
    assert "build failed" in str(error)


def test_operation_past_its_deadline_names_the_resource(make_engine, fake):
    fake.stuck_operations.add(FUNCTION_CREATE)
    with pytest.raises(ApplyFailed) as failed:
        deploy(make_engine(operation_deadline=0.2))
    error = failed.value.failures["function/skybridge-dev-ingest"]
    assert "create function/skybridge-dev-ingest: not done after" in str(error)


def test_drift_is_planned_as_an_update_of_exactly_that_field(make_engine, deployed):
    deployed.store[DEAD_LETTER_SUBSCRIPTION]["ackDeadlineSeconds"] = 10
    plan = make_engine().plan()
    (change,) = plan.pending
    assert (change.action, change.key) == ("update", "subscription/skybridge-dev-dead-letter")
    assert [(f.path, f.before, f.after) for f in change.fields] == [("ackDeadlineSeconds", 10, 60)]
    assert change.mask == ["ackDeadlineSeconds"]
    make_engine().apply(plan)
    assert deployed.store[DEAD_LETTER_SUBSCRIPTION]["ackDeadlineSeconds"] == 60
    assert make_engine().plan().pending == []


def test_nested_drift_updates_only_its_top_level_field(make_engine, deployed):
    deployed.store[BUCKET]["versioning"] = {"enabled": False}
    (change,) = make_engine().plan().pending
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("versioning.enabled", False, True)
    ]
    assert change.mask == ["versioning"]
    make_engine().apply(make_engine().plan())
    assert make_engine().plan().pending == []


def test_immutable_field_change_is_a_replacement(make_engine, deployed):
    deployed.store[BUCKET]["location"] = "US"
    (change,) = make_engine().plan().pending
    assert change.action == "replace"
    assert change.key == f"bucket/{PROJECT}-skybridge-dev-assets"


def test_output_only_fields_never_cause_a_diff():
    desired = {"labels": {"a": "b"}, "ackDeadlineSeconds": 60}
    live = desired | {"state": "ACTIVE", "createTime": "2026-01-01T00:00:00Z"}
    assert diff(desired, live) == []


def test_int64_fields_read_back_as_strings_are_equal():
    assert diff({"maxDeliveryAttempts": 5}, {"maxDeliveryAttempts": "5"}) == []


def test_labelled_resource_no_longer_declared_is_planned_for_deletion(make_engine, deployed):
    topics = f"pubsub:projects/{PROJECT}/topics"
    deployed.store[f"{topics}/skybridge-dev-retired"] = {
        "name": f"projects/{PROJECT}/topics/skybridge-dev-retired",
        "labels": {"skybridge-stack": "skybridge-dev"},
    }
    deployed.store[f"{topics}/someone-elses"] = {
        "name": f"projects/{PROJECT}/topics/someone-elses",
        "labels": {"team": "other"},
    }
    plan = make_engine().plan()
    assert [(c.action, c.key) for c in plan.pending] == [("delete", "topic/skybridge-dev-retired")]
    make_engine().apply(plan)
    assert f"{topics}/skybridge-dev-retired" not in deployed.store
    assert f"{topics}/someone-elses" in deployed.store
    assert make_engine().plan().pending == []


def test_dependency_cycle_is_refused(make_engine):
    ctx = make_engine().ctx
    a, b = Topic("topic/a", ("topic/b",)), Topic("topic/b", ("topic/a",))
    with pytest.raises(GcpStackError, match="dependency cycle"):
        Engine([a, b], ctx)


def test_unknown_dependency_is_refused(make_engine):
    with pytest.raises(GcpStackError, match="depends on unknown topic/missing"):
        Engine([Topic("topic/a", ("topic/missing",))], make_engine().ctx)


def test_prod_stack_with_email_channel_and_uptime_check_converges(make_engine, fake):
    deploy(make_engine("prod", api_url="https://api.example.com"))
    assert make_engine("prod", api_url="https://api.example.com").plan().pending == []
    (channel,) = [v for k, v in fake.store.items() if "/notificationChannels/" in k]
    assert channel["labels"] == {"email_address": "oncall@example.com"}
    policies = [v for k, v in fake.store.items() if "/alertPolicies/" in k]
    assert len(policies) == 5  # four on GCP's own parts, one on the uptime check
    assert all(p["notificationChannels"] == [channel["name"]] for p in policies)


def test_labelled_alert_policy_no_longer_declared_is_planned_for_deletion(make_engine, deployed):
    name = f"projects/{PROJECT}/alertPolicies/999"
    deployed.store[f"monitoring:{name}"] = {
        "name": name,
        "displayName": "skybridge-dev: retired alert",
        "userLabels": {"skybridge-stack": "skybridge-dev"},
    }
    plan = make_engine().plan()
    assert [(c.action, c.key) for c in plan.pending] == [
        ("delete", "alert_policy/skybridge-dev: retired alert")
    ]
    make_engine().apply(plan)
    assert f"monitoring:{name}" not in deployed.store
