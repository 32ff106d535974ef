"""The engine against a fake that behaves like Google (`Fidelity`): the whole lifecycle with
every rule on, then each rule on its own, each test failing without the engine's handling
of that rule (docs/gcp.md lists them with their sources)."""

from __future__ import annotations

import copy
import json

import pytest

import environments
from gcp_stack import stack
from gcp_stack.__main__ import main
from gcp_stack.errors import ApiCallFailed, ApplyFailed
from gcp_stack.names import Names
from local_stack.control_plane import ControlPlane
from local_stack.control_plane.fidelity import Fidelity
from tests.gcp_stack.conftest import engine_on
from tests.local_stack.test_control_plane import client, error_of

PROJECT = "skybridge-dev-000000"
STORE = f"cloudfunctions:projects/{PROJECT}/locations/europe-west1/functions/skybridge-dev-store"


def strict_on(plane: ControlPlane, env: str, tmp_path, *command: str) -> int:
    common = ["--env", env, "--api-endpoint", plane.url, "--poll-interval", "0.01"]
    return main([command[0], *common, "--outputs-dir", str(tmp_path), *command[1:]])


def ours(plane: ControlPlane, prefix: str) -> list[str]:
    """Keys of everything the fake holds that belongs to the stack `prefix`."""
    return [
        key
        for key, resource in plane.store.items()
        if prefix in key
        and not key.startswith("serviceusage:")  # destroy leaves APIs on
        and "-gcp-stack-locks" not in key  # the lock bucket, shared by the project's stacks
        and resource.get("state") != "DELETED"  # soft-deleted pools and providers
    ] + [
        f"policy {name}: {member}"
        for name, policy in plane.policies.items()
        for binding in policy.get("bindings", [])
        for member in binding["members"]
        if prefix in member
    ]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_fresh_project_deploy_replan_destroy_with_every_rule_on(env, tmp_path, capsys):
    prefix = f"skybridge-{env}"
    with ControlPlane(fidelity=Fidelity.strict()) as plane:
        assert strict_on(plane, env, tmp_path, "plan", "--detailed-exitcode") == 2
        assert strict_on(plane, env, tmp_path, "deploy", "--auto-approve") == 0
        capsys.readouterr()
        assert strict_on(plane, env, tmp_path, "plan", "--detailed-exitcode") == 0
        assert "no changes" in capsys.readouterr().out
        functions = [r for k, r in plane.store.items() if "/functions/" in k]
        assert {f["state"] for f in functions} == {"ACTIVE"}
        assert strict_on(plane, env, tmp_path, "destroy", "--auto-approve", "--force") == 0
        assert ours(plane, prefix) == []


def test_a_saved_plan_deploys_and_destroys_a_fresh_project_with_every_rule_on(tmp_path):
    deploy_plan, destroy_plan = str(tmp_path / "deploy.plan"), str(tmp_path / "destroy.plan")
    with ControlPlane(fidelity=Fidelity.strict()) as plane:
        assert strict_on(plane, "dev", tmp_path, "plan", "--out", deploy_plan) == 0
        # The lock enables Cloud Storage before the apply: no move, since that is the plan.
        assert main(["deploy", deploy_plan, "--api-endpoint", plane.url,
                     "--poll-interval", "0.01", "--outputs-dir", str(tmp_path)]) == 0  # fmt: skip
        assert strict_on(plane, "dev", tmp_path, "plan", "--detailed-exitcode") == 0
        assert strict_on(plane, "dev", tmp_path, "plan", "--destroy", "--allow-destroy-data",
                         "--out", destroy_plan) == 0  # fmt: skip
        assert main(["destroy", destroy_plan, "--api-endpoint", plane.url,
                     "--poll-interval", "0.01", "--outputs-dir", str(tmp_path)]) == 0  # fmt: skip
        assert ours(plane, "skybridge-dev") == []


def deploy(plane: ControlPlane, artifact, env: str = "dev", **options: float):
    engine = engine_on(plane.url, artifact, env, **options)
    engine.apply(engine.plan())
    return engine


def replan(plane: ControlPlane, artifact, env: str = "dev") -> list[str]:
    return [change.key for change in engine_on(plane.url, artifact, env).plan().pending]


def test_declared_defaults_do_not_diff_against_proto3_omission(artifact):
    with ControlPlane(fidelity=Fidelity(proto3_omission=True)) as plane:
        deploy(plane, artifact)
        alerts = client(plane, "monitoring", "v3").projects().alertPolicies()
        (alert, *_) = alerts.list(name=f"projects/{PROJECT}").execute()["alertPolicies"]
        assert "notificationChannels" not in alert  # the rule is on: [] was left out
        assert replan(plane, artifact) == []


def test_names_fit_google_limits_for_the_longest_environment_and_project(artifact, tmp_path):
    # 16-character environment name and 30-character project id: the longest allowed.
    raw = environments.load("dev").model_dump()
    raw["name"] = "a" * 16
    raw["gcp"]["project"] = "p" + "x" * 28 + "1"
    (tmp_path / f"{raw['name']}.toml").write_text(_toml(raw))
    environment = environments.load(raw["name"], tmp_path)
    names = Names(environment.prefix, environment.gcp.project)
    assert len(names.bucket) <= 63 and len(names.account("ingest")) <= 30
    assert names.account("ingest") != names.account("store")
    with ControlPlane(fidelity=Fidelity(id_rules=True)) as plane:
        engine = engine_on(plane.url, artifact, "dev")
        engine.resources = {r.key: r for r in stack.build(environment)}
        engine.ctx.project, engine.ctx.stack = environment.gcp.project, environment.prefix
        engine.apply(engine.plan())
        assert not engine.plan().pending


def test_ids_google_rejects_are_refused_by_the_fake():
    with ControlPlane(fidelity=Fidelity(id_rules=True)) as plane:
        pools = client(plane, "iam", "v1").projects().locations().workloadIdentityPools()
        providers = pools.providers()
        status, message = error_of(
            providers.create(parent="projects/p/locations/global/workloadIdentityPools/pool",
                             workloadIdentityPoolProviderId="aws", body={})
        )  # fmt: skip
        assert (status, "4-32" in message) == (400, True)


def test_plan_on_a_fresh_project_reads_disabled_apis_as_absent_then_deploys(artifact):
    with ControlPlane(fidelity=Fidelity(services_disabled=True, enable_propagation=0.3)) as plane:
        engine = engine_on(plane.url, artifact, "dev")
        plan = engine.plan()
        assert {c.action for c in plan.pending} == {"create"}
        engine.apply(plan)  # each API answers SERVICE_DISABLED for 0.3 s after its enable
        assert replan(plane, artifact) == []


def test_concurrent_enables_are_retried(artifact):
    with ControlPlane(fidelity=Fidelity(enable_duration=0.05)) as plane:
        deploy(plane, artifact)
        enabled = sum(1 for k in plane.store if k.startswith("serviceusage:"))
        assert plane.count("services.enable") > enabled  # some were refused, then retried
        assert replan(plane, artifact) == []


def test_new_service_accounts_are_awaited(artifact):
    with ControlPlane(fidelity=Fidelity(account_propagation=0.5)) as plane:
        engine = deploy(plane, artifact)
        email = f"skybridge-dev-relay@{PROJECT}.iam.gserviceaccount.com"
        assert engine.outputs["service_account/skybridge-dev-relay"]["email"] == email
        assert replan(plane, artifact) == []


def test_retrying_gives_up_at_its_deadline_and_says_which_class(artifact):
    with ControlPlane(fidelity=Fidelity(account_propagation=60)) as plane:
        engine = engine_on(plane.url, artifact, "dev", propagation_deadline=0.5)
        with pytest.raises(ApplyFailed) as failed:
            engine.apply(engine.plan())
        assert "gave up after" in str(failed.value)
        assert "service account not yet visible" in str(failed.value)


def test_eventarc_agent_first_use_is_retried(artifact):
    with ControlPlane(fidelity=Fidelity(eventarc_agent_delay=0.5)) as plane:
        deploy(plane, artifact)
        assert plane.store[STORE]["state"] == "ACTIVE"
        assert replan(plane, artifact) == []


def test_failed_function_is_planned_for_redeploy(artifact):
    with ControlPlane(fidelity=Fidelity(failing_builds={"skybridge-dev-store"})) as plane:
        engine = engine_on(plane.url, artifact, "dev")
        with pytest.raises(ApplyFailed):
            engine.apply(engine.plan())
        assert plane.store[STORE]["state"] == "FAILED"
        plan = engine_on(plane.url, artifact, "dev").plan()
        (repair,) = [c for c in plan.pending if c.key == "function/skybridge-dev-store"]
        assert repair.action == "update" and "FAILED" in repair.reason
        deploy(plane, artifact)
        assert plane.store[STORE]["state"] == "ACTIVE"
        assert replan(plane, artifact) == []


def test_update_without_new_source_keeps_the_build_source(artifact, deployed):
    engine = engine_on(deployed.url, artifact, "dev")
    store = engine.resources["function/skybridge-dev-store"]
    store.runtime = "python313"  # type: ignore[attr-defined]  # buildConfig changes, not the source
    plan = engine.plan()
    assert [c.key for c in plan.pending] == ["function/skybridge-dev-store"]
    engine.apply(plan)
    function = deployed.store[STORE]
    assert function["state"] == "ACTIVE"
    assert "storageSource" in function["buildConfig"]["source"]


def test_conditional_bindings_survive_our_policy_edits(artifact):
    with ControlPlane(fidelity=Fidelity(policy_versions=True)) as plane:
        condition = {"title": "office hours", "expression": "request.time.getHours('UTC') < 18"}
        theirs = {"role": "roles/viewer", "members": ["user:a@example.com"], "condition": condition}
        policy = f"projects/{PROJECT}"
        plane.policies[policy] = {"version": 3, "etag": "BwAAAA==", "bindings": [theirs]}
        deploy(plane, artifact)
        assert theirs in plane.policies[policy]["bindings"]
        assert plane.policies[policy]["version"] == 3
        assert replan(plane, artifact) == []


def test_bucket_policy_etag_conflict_412_is_read_again(artifact):
    with ControlPlane(fidelity=Fidelity(policy_versions=True)) as plane:
        plane.race_next_policy_write(f"b/{PROJECT}-skybridge-dev-assets/iam")
        deploy(plane, artifact)
        assert plane.racing == []  # the race happened
        assert replan(plane, artifact) == []


def test_every_page_of_every_list_is_read(artifact):
    with ControlPlane(fidelity=Fidelity(page_size=1)) as plane:
        deploy(plane, artifact)
        assert replan(plane, artifact) == []  # alert policies on later pages found too
        engine = engine_on(plane.url, artifact, "dev")
        del engine.resources["subscription/skybridge-dev-dead-letter"]
        for resource in engine.resources.values():
            resource.depends_on = tuple(
                d for d in resource.depends_on if d != "subscription/skybridge-dev-dead-letter"
            )
        deletes = [c.key for c in engine.plan().pending if c.action == "delete"]
        assert deletes == ["subscription/skybridge-dev-dead-letter"]


def test_dead_letter_policy_survives_a_trigger_change(artifact):
    with ControlPlane(fidelity=Fidelity(trigger_recreation=True)) as plane:
        deploy(plane, artifact)
        engine = engine_on(plane.url, artifact, "dev")
        store = engine.resources["function/skybridge-dev-store"]
        before = plane.store[STORE]["eventTrigger"]["trigger"]
        original = store.body
        store.body = lambda ctx: _retry_off(original(ctx))  # type: ignore[method-assign]
        plan = engine.plan()
        again = {c.key for c in plan.pending if c.reason.startswith("re-applied")}
        assert "trigger_dead_letter_policy/skybridge-dev-store" in again
        engine.apply(plan)
        assert plane.store[STORE]["eventTrigger"]["trigger"] != before  # a new trigger
        subscription = _trigger_subscription(plane)
        assert "deadLetterPolicy" in plane.store[f"pubsub:{subscription}"]
        members = [m for b in plane.policies[subscription]["bindings"] for m in b["members"]]
        assert any("gcp-sa-pubsub" in m for m in members)
        alert = next(r for k, r in plane.store.items()
                     if "alertPolicies" in k and "backlog" in r["displayName"])  # fmt: skip
        assert subscription.rsplit("/", 1)[-1] in json.dumps(alert["conditions"])


def _retry_off(body: dict) -> dict:
    body = copy.deepcopy(body)
    body["eventTrigger"]["retryPolicy"] = "RETRY_POLICY_DO_NOT_RETRY"
    return body


def _trigger_subscription(plane: ControlPlane) -> str:
    trigger = plane.store[STORE]["eventTrigger"]["trigger"]
    return plane.store[f"eventarc:{trigger}"]["transport"]["pubsub"]["subscription"]


def test_an_unknown_disabled_api_error_says_how_to_enable_it(artifact):
    with ControlPlane(fidelity=Fidelity(services_disabled=True)) as plane:
        engine = engine_on(plane.url, artifact, "dev")
        topic = engine.resources["topic/skybridge-dev-submissions"]
        with pytest.raises(ApiCallFailed) as failed:
            topic.create(engine.ctx)
        assert "enable pubsub.googleapis.com" in str(failed.value)


def _toml(raw: dict) -> str:
    lines = []
    for key, value in raw.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {json.dumps(value)}")
    for section, values in raw.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"
