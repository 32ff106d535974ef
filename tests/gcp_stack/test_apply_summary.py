"""After apply: one line "Apply complete: N added, M changed, K destroyed.", each change's
time as Terraform prints it, and the same as JSON for `make deploy`'s whole-system summary."""

from __future__ import annotations

import json

from environments import plans

PROJECT = "skybridge-dev-000000"
BUCKET = f"{PROJECT}-skybridge-dev-assets"


def test_deploy_ends_with_the_counts_and_each_changes_time(cli, fake, tmp_path, capsys):
    summary = tmp_path / "apply.json"
    assert cli("deploy", "--auto-approve", "--summary-out", str(summary)) == 0
    out = capsys.readouterr().out
    applied = plans.ApplySummary.model_validate_json(summary.read_text())
    assert (applied.command, applied.status, applied.changed, applied.destroyed) == (
        "deploy", "applied", 0, 0)  # fmt: skip
    assert applied.added == len(applied.changes) > 40
    assert f"Apply complete: {applied.added} added, 0 changed, 0 destroyed.\n" in out
    assert f"bucket/{BUCKET}: Creating...\n" in out
    assert f"bucket/{BUCKET}: Creation complete after " in out
    timed = {c.key: c.seconds for c in applied.changes}
    assert all(seconds >= 0 for seconds in timed.values()) and sum(timed.values()) > 0


def test_a_replace_counts_as_one_added_and_one_destroyed(cli, deployed, tmp_path, capsys):
    deployed.store[f"storage:b/{BUCKET}"]["versioning"] = {"enabled": False}
    summary = tmp_path / "apply.json"
    replace = ["--replace", "topic/skybridge-dev-submissions", "--allow-destroy-data"]
    assert cli("deploy", "--auto-approve", "--summary-out", str(summary), *replace) == 0
    out = capsys.readouterr().out
    assert "Apply complete: 1 added, 1 changed, 1 destroyed." in out
    assert f"bucket/{BUCKET}: Modifications complete after " in out
    assert "topic/skybridge-dev-submissions: Replacement complete after " in out
    applied = json.loads(summary.read_text())
    assert {c["key"]: c["action"] for c in applied["changes"]} == {
        f"bucket/{BUCKET}": "update",
        "topic/skybridge-dev-submissions": "replace",
    }


def test_json_prints_the_plan_then_the_summary_one_document_a_line(cli, deployed, capsys):
    deployed.store[f"storage:b/{BUCKET}"]["versioning"] = {"enabled": False}
    assert cli("deploy", "--auto-approve", "--json") == 0
    captured = capsys.readouterr()
    plan, summary = (json.loads(line) for line in captured.out.splitlines())
    assert (plan["type"], plan["summary"]["update"]) == ("plan", 1)
    assert (summary["type"], summary["changed"]) == ("apply_summary", 1)
    assert "Apply complete: 0 added, 1 changed, 0 destroyed." in captured.err


def test_a_failed_apply_still_writes_its_summary(cli, fake, tmp_path, capsys):
    fake.fail_next("pubsub.projects.topics.create", 400, "bad request")
    summary = tmp_path / "apply.json"
    assert cli("deploy", "--auto-approve", "--summary-out", str(summary)) == 1
    applied = plans.ApplySummary.model_validate_json(summary.read_text())
    assert applied.status == "failed" and applied.failed == 1 and applied.skipped > 0
    (failed,) = [c for c in applied.changes if c.status == "failed"]
    assert failed.key.startswith("topic/") and "bad request" in failed.error
    out = capsys.readouterr().out
    assert f"{failed.key}: failed after " in out and "Apply failed: " in out


def test_nothing_to_do_is_a_summary_too(cli, deployed, tmp_path, capsys):
    summary = tmp_path / "apply.json"
    assert cli("destroy", "--auto-approve", "--summary-out", str(summary),
               "--target", "log_metric/skybridge-dev-submission-stored") == 0  # fmt: skip
    assert cli("destroy", "--auto-approve", "--summary-out", str(summary),
               "--target", "log_metric/skybridge-dev-submission-stored") == 0  # fmt: skip
    applied = plans.ApplySummary.model_validate_json(summary.read_text())
    assert (applied.status, applied.added, applied.changed, applied.destroyed) == (
        "no changes", 0, 0, 0)  # fmt: skip
    assert "Apply complete: 0 added, 0 changed, 0 destroyed." in capsys.readouterr().out
