"""`plan --out FILE` then `deploy FILE`: exactly that plan, or a sentence saying why not."""

from __future__ import annotations

import json

import pytest

from environments import plans
from gcp_stack.__main__ import main, saved_plan
from tests.gcp_stack.conftest import engine_on

PROJECT = "skybridge-dev-000000"
BUCKET = f"storage:b/{PROJECT}-skybridge-dev-assets"
TOPIC = f"pubsub:projects/{PROJECT}/topics/skybridge-dev-submissions"


@pytest.fixture
def cli(fake, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)  # a prompt would be answered…
    monkeypatch.setattr("builtins.input", lambda *_: pytest.fail("deploy FILE asked"))
    common = ["--api-endpoint", fake.url, "--poll-interval", "0.01"]
    return lambda command, *extra: main([command, *common, "--outputs-dir", str(tmp_path), *extra])


def stack_state(fake) -> str:
    """The fake's resources but the lock's object (taken and released meanwhile)."""
    return json.dumps({k: v for k, v in fake.store.items() if "-gcp-stack-locks" not in k},
                      sort_keys=True)  # fmt: skip


def error_of(capsys) -> str:
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    (line,) = [line for line in text.splitlines() if line.startswith("error:")]
    return line


def test_deploy_applies_the_saved_plan_without_asking(cli, fake, tmp_path):
    saved = tmp_path / "dev.plan"
    assert cli("plan", "--env", "dev", "--out", str(saved)) == 0
    assert not any("/functions/" in key for key in fake.store)  # plan changed nothing
    document = plans.read_plan(saved)
    assert (document.env, document.project, document.stack) == ("dev", PROJECT, "skybridge-dev")
    assert document.summary.create == len(document.changes) > 40
    assert {c.fingerprint for c in document.changes} == {"absent"}
    assert cli("deploy", str(saved)) == 0
    assert any("/functions/" in key for key in fake.store)
    assert cli("plan", "--env", "dev", "--detailed-exitcode") == 0


def test_terraforms_spelling_of_out_is_accepted(cli, deployed, tmp_path):
    deployed.store[BUCKET]["versioning"] = {"enabled": False}
    assert cli("plan", "--env", "dev", f"-out={tmp_path / 'a.plan'}") == 0
    assert cli("plan", "--env", "dev", "-out", str(tmp_path / "b.plan")) == 0
    for name in ("a.plan", "b.plan"):
        (change,) = [c for c in plans.read_plan(tmp_path / name).changes if c.action != "no-op"]
        assert change.key.startswith("bucket/") and change.action == "update"
        assert change.fields[0].before is False and change.fingerprint != "absent"


def test_a_saved_plan_refuses_when_what_it_changes_moved(cli, deployed, tmp_path, capsys):
    deployed.store[BUCKET]["versioning"] = {"enabled": False}
    saved = tmp_path / "dev.plan"
    assert cli("plan", "--env", "dev", "--out", str(saved)) == 0
    deployed.store[BUCKET]["labels"]["team"] = "other"  # someone changed it since
    before = stack_state(deployed)
    assert cli("deploy", str(saved)) == 1
    line = error_of(capsys)
    assert f"bucket/{PROJECT}-skybridge-dev-assets changed since" in line
    assert "plan --out" in line
    assert stack_state(deployed) == before  # nothing applied


def test_a_saved_plan_rereads_only_what_it_touches(cli, deployed, tmp_path, artifact):
    deployed.store[BUCKET]["versioning"] = {"enabled": False}
    saved = tmp_path / "dev.plan"
    assert cli("plan", "--env", "dev", "--out", str(saved)) == 0
    deployed.store[TOPIC]["labels"]["team"] = "other"  # not in the plan: no reason to refuse
    engine = engine_on(deployed.url, artifact)
    before = len(deployed.requests)
    assert engine.moved(saved_plan(plans.read_plan(saved))) == []
    reads = {path for _, path in deployed.requests[before:]}
    # The bucket and what it depends on (the twelve APIs), nothing else.
    assert len(reads) == 13 and any(BUCKET.split("/")[-1] in path for path in reads), reads
    assert cli("deploy", str(saved)) == 0
    assert deployed.store[BUCKET]["versioning"] == {"enabled": True}


def test_a_saved_plan_refuses_when_the_configuration_changed(cli, deployed, tmp_path, capsys):
    saved = tmp_path / "dev.plan"
    assert cli("plan", "--env", "dev", "--out", str(saved), "--api-url", "https://a.example") == 0
    assert cli("deploy", str(saved), "--api-url", "https://b.example") == 1
    assert "the configuration changed since" in error_of(capsys)


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (["--env", "prod"], "is a plan for env dev, not prod"),
        (["--project", "another-project-42"], "is a plan for project skybridge-dev-000000"),
        (["--target", "topic/x"], "already says what to change"),
    ],
    ids=["another env", "another project", "with --target"],
)
def test_a_saved_plan_for_something_else_is_refused(cli, fake, tmp_path, capsys, extra, sentence):
    saved = tmp_path / "dev.plan"
    assert cli("plan", "--env", "dev", "--out", str(saved)) == 0
    capsys.readouterr()
    assert cli("deploy", str(saved), *extra) == 1
    assert sentence in error_of(capsys)
    assert not any("/functions/" in key for key in fake.store)


BAD_PLANS = {
    "not JSON": ("{not json", "is not readable JSON"),
    "not a plan": ('{"changes": []}', "is not a gcp_stack plan file"),
    "unknown version": ('{"type": "plan", "format_version": 7}', "has format version 7"),
    "missing field": ('{"type": "plan", "format_version": 1}', "stack: Field required"),
}


@pytest.mark.parametrize("case", BAD_PLANS, ids=list(BAD_PLANS))
def test_an_unusable_plan_file_is_one_sentence_and_exit_1(cli, tmp_path, capsys, case):
    text, sentence = BAD_PLANS[case]
    bad = tmp_path / "bad.plan"
    bad.write_text(text)
    assert cli("deploy", str(bad)) == 1
    line = error_of(capsys)
    assert sentence in line and "plan --out" in line


def test_a_destroy_plan_is_saved_and_applied(cli, deployed, tmp_path, capsys):
    saved = tmp_path / "destroy.plan"
    assert cli("plan", "--env", "dev", "--destroy", "--out", str(saved)) == 0
    assert "destroy" in capsys.readouterr().out
    assert plans.read_plan(saved).destroy
    assert cli("destroy", str(saved)) == 1  # it loses data, and the plan was not told so
    assert "--allow-destroy-data" in error_of(capsys)
    assert cli("destroy", str(saved), "--allow-destroy-data") == 0
    assert f"pubsub:projects/{PROJECT}/topics/skybridge-dev-submissions" not in deployed.store
    assert not any("/functions/" in key for key in deployed.store)


def test_a_deploy_plan_is_not_a_destroy_plan(cli, fake, tmp_path, capsys):
    saved = tmp_path / "dev.plan"
    assert cli("plan", "--env", "dev", "--out", str(saved)) == 0
    capsys.readouterr()
    assert cli("destroy", str(saved)) == 1
    assert "is a deploy plan" in error_of(capsys)
