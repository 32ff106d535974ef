"""`python -m deployment plan|deploy|destroy`: both clouds, one plan, one approval, one
summary. GCP is the real gcp_stack against the fake control plane; AWS is a fake `cdk` that
records its argv and answers as the real CLI does (`cdk diff` runs against moto's server,
see test_cdk_diff_against_moto; `cdk deploy` needs a bootstrapped account and
CloudFormation for every resource type, which moto does not provide)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deployment.system import (
    Timed,
    cdk_diff_counts,
    cdk_event_timings,
    summary_counts,
    uptime_keys,
)
from local_stack.control_plane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CDK = Path(__file__).resolve().parent / "cdk"
# What cdk 2.1148 prints (the format of a first `cdk diff`, of `cdk deploy --progress events`).
DIFF = (CDK / "diff.txt").read_text()
EVENTS = (CDK / "events.txt").read_text()


@pytest.fixture(scope="module")
def plane():
    with ControlPlane() as fake:
        yield fake


@pytest.fixture(scope="module")
def world(tmp_path_factory, plane):
    """The fake `cdk` on its own, outputs under a directory of the test's own."""
    base = tmp_path_factory.mktemp("system")
    cdk = base / "cdk"
    cdk.write_text(f"#!{sys.executable}\n" + (CDK / "fake_cdk.py").read_text())
    cdk.chmod(0o755)
    (base / "diff.txt").write_text(DIFF)
    (base / "events.txt").write_text(EVENTS)
    return base


def run(world: Path, plane, *args: str, answer: str | None = None) -> tuple[int, str, list]:
    log = world / "cdk.log"
    log.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "deployment",
        *args,
        "--cdk",
        str(world / "cdk"),
        "--outputs-root",
        str(world),
        f"--gcp-arg=--api-endpoint={plane.url}",
        "--gcp-arg=--poll-interval=0.01",
    ]
    env = os.environ | {
        "FAKE_CDK_LOG": str(log),
        "FAKE_CDK_DIFF": str(world / "diff.txt"),
        "FAKE_CDK_EVENTS": str(world / "events.txt"),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        input=answer,
        stdin=None if answer is not None else subprocess.DEVNULL,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done.returncode, done.stdout + done.stderr, calls


def commands_run(output: str) -> list[str]:
    """The order of the CLIs the module ran, from the `$ …` lines it echoes."""
    order = []
    for line in output.splitlines():
        if line.startswith("$ "):
            words = line.split()
            tool = "gcp" if "gcp_stack" in words else "cdk"
            verb = words[words.index("gcp_stack") + 1] if tool == "gcp" else words[2]
            if verb != "--help" and "--help" not in words:
                order.append(f"{tool} {verb}")
    return order


def test_deploy_shows_both_plans_asks_once_then_applies_in_order(world, plane):
    code, out, calls = run(world, plane, "deploy", "--env", "dev", answer="yes\n")
    assert code == 0, out
    assert out.count("Type 'yes' to deploy dev") == 1
    prompt = out.index("Type 'yes'")
    assert "GCP: " in out[:prompt] and "to add" in out[:prompt]
    assert "AWS: 2 to add, 1 to change, 1 to destroy (1 replaced) — skybridge-dev" in out[:prompt]
    assert "This one approval covers" in out[:prompt]
    order = commands_run(out)
    assert order[:2] == ["gcp plan", "cdk diff"]  # both plans, then the one question
    applies = [step for step in order[2:] if step != "gcp plan"]
    assert applies == ["gcp deploy", "cdk deploy", "gcp deploy"]  # GCP, AWS, uptime check
    deploy = next(c for c in calls if c[0] == "deploy")
    assert deploy[:2] == ["deploy", "--all"]
    assert "env=dev" in deploy and "wheelhouse=true" in deploy
    assert deploy[deploy.index("--require-approval") + 1] == "never"
    assert "--force" not in deploy
    summary = out[out.index("Summary for dev:") :]
    assert "AWS: 2 added, 1 changed, 1 destroyed" in summary
    assert "420.0s  create   AWS::RDS::DBInstance DatabaseInstanceAA8A5FDE" in summary
    gcp = re.search(r"GCP: (\d+) added, 0 changed, 0 destroyed", summary)
    assert gcp and int(gcp[1]) > 40, summary
    assert re.search(r"s  create   function/skybridge-dev-ingest", summary) or "more" in summary
    assert "GCP (uptime check): 2 added, 0 changed, 0 destroyed" in summary
    assert "create   uptime_check/skybridge-dev api healthz" in summary
    assert "create   alert_policy/skybridge-dev: API unreachable" in summary


def test_auto_approve_skips_the_question_on_dev(world, plane):
    code, out, calls = run(world, plane, "deploy", "--env", "dev", "--auto-approve")
    assert code == 0, out
    assert "Type " not in out
    assert any(c[0] == "deploy" for c in calls)


@pytest.mark.parametrize(
    ("extra", "answer", "words"),
    [
        (["--auto-approve"], None, ["AUTO_APPROVE does not approve prod", "pass CONFIRM=prod"]),
        (
            ["--confirm", "dev"],
            None,
            ["CONFIRM=dev does not name this environment", "pass CONFIRM=prod"],
        ),
        ([], "yes\n", ["Type 'prod' to deploy prod", "deploy cancelled: nothing changed"]),
    ],
    ids=["auto-approve alone", "another env's name", "yes is not prod's name"],
)
def test_prod_is_not_deployed_without_its_name(world, plane, extra, answer, words):
    code, out, calls = run(world, plane, "deploy", "--env", "prod", *extra, answer=answer)
    assert code == 1, out
    for word in words:
        assert word in out
    assert [c[0] for c in calls] == ["diff"]  # planned, never deployed
    assert "$ " + sys.executable + " -m gcp_stack deploy" not in out
    assert "Traceback" not in out


def test_plan_shows_both_clouds_and_a_line_each(world, plane):
    code, out, calls = run(world, plane, "plan", "--env", "prod")
    assert code == 0, out
    assert [c[0] for c in calls] == ["diff"]
    tail = out[out.index("Plan for prod:") :].splitlines()
    assert tail[1].startswith("  GCP: ") and "to add" in tail[1]
    assert tail[2].startswith("  AWS: 2 to add, 1 to change, 1 to destroy")


def test_destroy_asks_once_and_goes_aws_first(world, plane):
    code, out, calls = run(world, plane, "destroy", "--env", "dev", answer="y\n")
    assert code == 0, out
    assert out.count("Type 'yes' to destroy dev") == 1
    order = commands_run(out)
    assert order.index("cdk destroy") < order.index("gcp destroy")
    destroy = next(c for c in calls if c[0] == "destroy")
    assert destroy[:3] == ["destroy", "--all", "--force"]
    assert "AWS: 0 added, 0 changed, 1 destroyed" in out


def test_no_input_refuses_naming_auto_approve(world, plane):
    code, out, calls = run(world, plane, "deploy", "--env", "dev")
    assert code == 1, out
    assert "pass AUTO_APPROVE=1 to deploy dev unattended" in out
    assert [c[0] for c in calls] == ["diff"]


# -- reading the CLIs' output ------------------------------------------------------------


def test_diff_counts_resources_only():
    counts = cdk_diff_counts(DIFF.format(env="dev"))
    assert (counts.added, counts.changed, counts.destroyed, counts.replaced) == (2, 1, 1, 1)


def test_event_timings_per_resource_and_replacements_timed_to_their_update():
    timed = {t.key: t for t in cdk_event_timings(EVENTS.format(env="dev"))}
    assert timed["AWS::RDS::DBInstance DatabaseInstanceAA8A5FDE"].seconds == 420
    assert timed["AWS::SNS::Topic AlarmTopicD01E77F9"].seconds == 2  # 1:59:59 → 2:00:01
    template = timed["AWS::EC2::LaunchTemplate ApiLaunchTemplate1234"]
    assert (template.action, template.seconds) == ("replace", 2)
    assert timed["AWS::CloudWatch::Alarm MonitoringOld5678"].action == "delete"
    counts = summary_counts(list(timed.values()))
    assert (counts.added, counts.changed, counts.destroyed) == (2, 1, 1)


def test_gcp_counts_a_replace_as_terraform_does_one_added_and_one_destroyed():
    timed = [Timed("bucket/b", "replace", 1.0, "done"), Timed("topic/t", "update", 1.0, "done"),
             Timed("function/f", "create", 1.0, "failed")]  # fmt: skip
    counts = summary_counts(timed, terraform=True)
    assert (counts.added, counts.changed, counts.destroyed, counts.replaced) == (1, 1, 1, 1)
    counts = summary_counts(timed)  # CloudFormation: a replacement is an update
    assert (counts.added, counts.changed, counts.destroyed, counts.replaced) == (0, 2, 0, 1)


def test_a_24_hour_clock_and_a_failure_are_read_too():
    lines = textwrap.dedent("""\
        s | 1/2 | 23:59:58 | CREATE_IN_PROGRESS | AWS::SQS::Queue | Q (Q1)
        s | 2/2 | 00:00:03 | CREATE_FAILED | AWS::SQS::Queue | Q (Q1) Resource limit exceeded
    """)
    assert cdk_event_timings(lines) == [Timed("AWS::SQS::Queue Q1", "create", 5.0, "failed")]


def test_the_second_gcp_pass_may_change_the_uptime_check_and_what_depends_on_it_only():
    changes = [
        {"key": "service/monitoring.googleapis.com", "depends_on": []},
        {"key": "uptime_check/skybridge-dev api healthz", "depends_on": ["service/x"]},
        {"key": "alert_policy/skybridge-dev: API unreachable",
         "depends_on": ["uptime_check/skybridge-dev api healthz"]},
        {"key": "notification/x", "depends_on": ["alert_policy/skybridge-dev: API unreachable"]},
        {"key": "alert_policy/skybridge-dev: delivery backlog", "depends_on": ["topic/t"]},
    ]  # fmt: skip
    assert uptime_keys(changes) == {
        "uptime_check/skybridge-dev api healthz",
        "alert_policy/skybridge-dev: API unreachable",
        "notification/x",
    }
