"""The plan/apply engine against the fake control plane."""

from __future__ import annotations

import json

import pytest
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from gcp_stack.__main__ import main
from gcp_stack.engine import diff
from gcp_stack.errors import ApplyFailed
from local_stack.control_plane import endpoint

FUNCTION_CREATE = "cloudfunctions.projects.locations.functions.create"


def deploy(engine):
    engine.apply(engine.plan())
    return engine


def test_second_plan_after_deploy_changes_nothing(make_engine):
    engine = deploy(make_engine())
    assert make_engine().plan().pending == []
    assert engine.outputs["function/skybridge-dev-ingest"]["url"].startswith("https://")


def test_destroy_removes_every_stack_resource(make_engine, fake):
    deploy(make_engine())
    destroy = make_engine().plan(destroy=True)
    assert {c.action for c in destroy.pending} == {"delete"}
    make_engine().apply(destroy)
    remaining = [key for key in fake.store if not key.startswith("serviceusage:")]
    # APIs stay enabled. Eventarc's own trigger and subscription go with the function in
    # Google; the fake keeps them, so only those may remain.
    assert remaining and all("eventarc" in key for key in remaining), remaining
    after = make_engine().plan()
    assert {c.action for c in after.pending} == {"create"}


def test_transient_503_is_retried_transparently(make_engine, fake):
    fake.fail_next(FUNCTION_CREATE, 503)
    deploy(make_engine(deadline=10))
    assert fake.count("functions.create") == 3  # two functions, one retried once


def test_outage_mid_apply_stops_dependents_and_rerun_converges(make_engine, fake):
    for _ in range(200):
        fake.fail_next(FUNCTION_CREATE, 503)
    with pytest.raises(ApplyFailed) as failed:
        deploy(make_engine(deadline=0.5))
    assert "function/skybridge-dev-ingest" in failed.value.failures
    assert any("run_service:skybridge-dev-ingest" in key for key in failed.value.skipped)
    assert "HTTP 503" in str(failed.value)
    fake.faults.clear()
    rerun = make_engine().plan()
    assert {c.action for c in rerun.pending} == {"create"}
    assert "topic/skybridge-dev-submissions" not in {c.key for c in rerun.pending}
    make_engine().apply(rerun)
    assert make_engine().plan().pending == []


def test_failed_operation_names_the_resource_and_operation(make_engine, fake):
    fake.failed_operations.add(FUNCTION_CREATE)
    with pytest.raises(ApplyFailed) as failed:
        deploy(make_engine())
    error = failed.value.failures["function/skybridge-dev-store"]
    assert "create function/skybridge-dev-store" in str(error)
    assert "build failed" in str(error)


def test_drift_is_planned_as_an_update_of_exactly_that_field(make_engine, fake):
    deploy(make_engine())
    fake.store["pubsub:projects/skybridge-dev-000000/subscriptions/skybridge-dev-dead-letter"][
        "ackDeadlineSeconds"
    ] = 10
    plan = make_engine().plan()
    (change,) = plan.pending
    assert change.action == "update"
    assert [(f.path, f.before, f.after) for f in change.fields] == [("ackDeadlineSeconds", 10, 60)]
    make_engine().apply(plan)
    assert make_engine().plan().pending == []


def test_immutable_field_change_is_a_replacement(make_engine, fake):
    deploy(make_engine())
    fake.store["storage:b/skybridge-dev-000000-skybridge-dev-assets"]["location"] = "US"
    (change,) = make_engine().plan().pending
    assert change.action == "replace"
    assert change.key == "bucket/skybridge-dev-000000-skybridge-dev-assets"


def test_output_only_fields_never_cause_a_diff():
    desired = {"labels": {"a": "b"}, "ackDeadlineSeconds": 60}
    live = desired | {"state": "ACTIVE", "createTime": "2026-01-01T00:00:00Z"}
    assert diff(desired, live) == []


def test_ingest_is_invokable_by_the_relay_only(make_engine, fake):
    deploy(make_engine())
    (policy,) = [p for r, p in fake.policies.items() if r.endswith("services/skybridge-dev-ingest")]
    members = {m for b in policy["bindings"] for m in b["members"]}
    assert members == {
        "serviceAccount:skybridge-dev-relay@skybridge-dev-000000.iam.gserviceaccount.com"
    }


def test_provider_admits_only_the_relay_role_of_the_account(make_engine, fake):
    deploy(make_engine())
    (provider,) = [v for k, v in fake.store.items() if "/providers/" in k]
    assert provider["aws"] == {"accountId": "111111111111"}
    assert "'111111111111'" in provider["attributeCondition"]
    assert "'skybridge-dev-relay'" in provider["attributeCondition"]


def test_store_trigger_subscription_dead_letters(make_engine, fake):
    deploy(make_engine())
    (subscription,) = [v for k, v in fake.store.items() if "subscriptions/eventarc-" in k]
    assert subscription["deadLetterPolicy"] == {
        "deadLetterTopic": "projects/skybridge-dev-000000/topics/skybridge-dev-dead-letter",
        "maxDeliveryAttempts": 5,
    }


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"labelz": {"a": "b"}}, 'Unknown name "labelz"'),
        ({"state": "ACTIVE"}, "output-only"),
        ({"labels": {"a": 5}}, "expected a string"),
        ({"messageStoragePolicy": {"enforceInTransit": "yes"}}, "expected a boolean"),
    ],
)
def test_fake_rejects_bodies_google_would_reject(fake, body, complaint):
    from google.auth.credentials import AnonymousCredentials

    pubsub = discovery.build(
        "pubsub", "v1", credentials=AnonymousCredentials(), static_discovery=True,
        client_options={"api_endpoint": endpoint(fake.url, "pubsub", "v1")},
    )  # fmt: skip
    with pytest.raises(HttpError) as rejected:
        pubsub.projects().topics().create(name="projects/p/topics/t", body=body).execute()
    assert rejected.value.status_code == 400
    assert complaint in json.loads(rejected.value.content)["error"]["message"]


def test_fake_rejects_a_bad_enum(fake):
    from google.auth.credentials import AnonymousCredentials

    functions = discovery.build(
        "cloudfunctions", "v2", credentials=AnonymousCredentials(), static_discovery=True,
        client_options={"api_endpoint": endpoint(fake.url, "cloudfunctions", "v2")},
    )  # fmt: skip
    body = {"serviceConfig": {"ingressSettings": "ALLOW_EVERYTHING"}}
    with pytest.raises(HttpError) as rejected:
        functions.projects().locations().functions().create(
            parent="projects/p/locations/r", functionId="f", body=body
        ).execute()
    assert rejected.value.status_code == 400
    assert "ALLOW_EVERYTHING" in json.loads(rejected.value.content)["error"]["message"]


def test_cli_deploy_writes_outputs_and_plan_exits_0_after(fake, tmp_path, capsys):
    common = ["--env", "dev", "--api-endpoint", fake.url, "--poll-interval", "0.01"]
    assert main(["deploy", *common, "--auto-approve", "--outputs-dir", str(tmp_path)]) == 0
    outputs = json.loads((tmp_path / "dev.json").read_text())
    assert outputs["ingest_url"].startswith("https://")
    assert outputs["service_account"].startswith("skybridge-dev-relay@")
    config = outputs["credential_config"]
    assert config["type"] == "external_account"
    assert config["credential_source"]["environment_id"] == "aws1"
    assert config["credential_source"]["imdsv2_session_token_url"].endswith("/latest/api/token")
    assert config["audience"].endswith("/workloadIdentityPools/skybridge-dev-aws/providers/aws")
    assert main(["plan", *common, "--detailed-exitcode"]) == 0
    assert "no changes" in capsys.readouterr().out


def test_cli_plan_detailed_exitcode_and_json(fake, capsys):
    assert main(["plan", "--env", "dev", "--api-endpoint", fake.url, "--json",
                 "--detailed-exitcode"]) == 2  # fmt: skip
    plan = json.loads(capsys.readouterr().out)
    actions = {change["action"] for change in plan["changes"]}
    assert actions == {"create"}


def test_cli_without_credentials_says_how_to_log_in(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GCP_STACK_API_ENDPOINT", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    assert main(["plan", "--env", "dev"]) == 1
    assert "gcloud auth application-default login" in capsys.readouterr().out


def test_cli_unknown_environment_is_a_clear_error(capsys):
    assert main(["synth", "--env", "nope"]) == 2
    assert "environments/nope.toml" in capsys.readouterr().out


def test_cli_refuses_to_apply_without_a_terminal(fake, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["deploy", "--env", "dev", "--api-endpoint", fake.url]) == 1
    assert "--auto-approve" in capsys.readouterr().out


def test_labelled_resource_no_longer_declared_is_planned_for_deletion(make_engine, fake):
    deploy(make_engine())
    fake.store["pubsub:projects/skybridge-dev-000000/topics/skybridge-dev-retired"] = {
        "name": "projects/skybridge-dev-000000/topics/skybridge-dev-retired",
        "labels": {"skybridge-stack": "skybridge-dev"},
    }
    fake.store["pubsub:projects/skybridge-dev-000000/topics/someone-elses"] = {
        "name": "projects/skybridge-dev-000000/topics/someone-elses",
        "labels": {"team": "other"},
    }
    plan = make_engine().plan()
    assert [(c.action, c.key) for c in plan.pending] == [
        ("delete", "topic/skybridge-dev-retired")
    ]
    make_engine().apply(plan)
    assert "pubsub:projects/skybridge-dev-000000/topics/skybridge-dev-retired" not in fake.store
    assert "pubsub:projects/skybridge-dev-000000/topics/someone-elses" in fake.store
    assert make_engine().plan().pending == []
