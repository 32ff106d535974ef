"""Deleting or replacing what holds data is marked in the plan and needs
`--allow-destroy-data` (which empties buckets first, as Terraform's force_destroy)."""

from __future__ import annotations

import json

import pytest

from gcp_stack.__main__ import main

PROJECT = "skybridge-dev-000000"
BUCKET = f"{PROJECT}-skybridge-dev-assets"
STORED = f"storage:b/{BUCKET}"


@pytest.fixture
def cli(fake, tmp_path):
    common = ["--env", "dev", "--api-endpoint", fake.url, "--poll-interval", "0.01"]
    return lambda command, *extra: main([command, *common, "--outputs-dir", str(tmp_path), *extra])


def put_objects(fake, *names: str) -> None:
    for name in names:
        fake.store[f"{STORED}/o/{name}"] = {"name": name, "bucket": BUCKET, "generation": "1"}


def error_of(captured) -> str:
    text = captured.out + captured.err
    assert "Traceback" not in text
    (line,) = [line for line in text.splitlines() if line.startswith("error:")]
    return line


def test_a_region_change_marks_the_bucket_replace_as_destroying_its_objects(cli, deployed, capsys):
    put_objects(deployed, "a", "b")
    assert cli("plan", "--region", "europe-west4") == 0
    out = capsys.readouterr().out
    assert f"-/+ bucket/{BUCKET}\n      destroys data: holds 2 object versions\n" in out
    assert (
        "Plan: 6 to create, 1 to update, 1 to replace, 2 to delete. 1 of them destroys data." in out
    )
    assert cli("plan", "--region", "europe-west4", "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    (bucket,) = [c for c in plan["changes"] if c["key"] == f"bucket/{BUCKET}"]
    assert (bucket["action"], bucket["destroys_data"]) == ("replace", "holds 2 object versions")
    assert f"bucket/{BUCKET}" in plan["destroys_data"]


def test_deploy_refuses_to_lose_data_in_one_sentence_then_allows_it(cli, deployed, capsys):
    put_objects(deployed, "a")
    capsys.readouterr()
    assert cli("deploy", "--auto-approve", "--region", "europe-west4") == 1
    line = error_of(capsys.readouterr())
    assert line.startswith("error: refusing to replace what holds data: ")
    assert f"bucket/{BUCKET} (holds 1 object version)" in line
    assert line.endswith("pass --allow-destroy-data to let it go")
    assert (
        deployed.store[STORED]["location"] == "EUROPE-WEST1" and f"{STORED}/o/a" in deployed.store
    )
    assert cli("deploy", "--auto-approve", "--region", "europe-west4", "--allow-destroy-data") == 0
    assert deployed.store[STORED]["location"] == "EUROPE-WEST4"
    assert f"{STORED}/o/a" not in deployed.store  # emptied first, as force_destroy does


def test_an_empty_bucket_loses_nothing(cli, deployed, capsys):
    assert cli("plan", "--region", "europe-west4", "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    (bucket,) = [c for c in plan["changes"] if c["key"] == f"bucket/{BUCKET}"]
    assert bucket["action"] == "replace" and bucket["destroys_data"] == ""
    assert cli("deploy", "--auto-approve", "--region", "europe-west4") == 0


def test_a_bucket_whose_objects_cannot_be_listed_is_taken_to_hold_some(cli, deployed, capsys):
    deployed.fail_next("storage.objects.list", 403, "forbidden")
    assert cli("plan", "--region", "europe-west4") == 0
    assert "destroys data: may hold objects: listing them failed (HTTP 403)" in (
        capsys.readouterr().out)  # fmt: skip


def test_destroy_marks_subscriptions_and_retained_topics(cli, deployed, capsys):
    assert cli("plan", "--destroy", "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    lost = {c["key"]: c["destroys_data"] for c in plan["changes"] if c["destroys_data"]}
    assert lost == {
        "topic/skybridge-dev-submissions": "keeps published messages for 604800s",
        "topic/skybridge-dev-dead-letter": "keeps published messages for 604800s",
        "topic/skybridge-dev-receipts": "keeps published messages for 604800s",
        "subscription/skybridge-dev-dead-letter": (
            "may hold undelivered messages, and Pub/Sub reports no backlog"
        ),
        "subscription/skybridge-dev-receipts-relay": (
            "may hold undelivered messages, and Pub/Sub reports no backlog"
        ),
    }  # the (empty) bucket is not there: it holds nothing


def test_objects_written_after_a_saved_plan_stop_it(cli, deployed, tmp_path, capsys):
    saved = tmp_path / "destroy.plan"
    assert cli("plan", "--destroy", "--allow-destroy-data", "--out", str(saved)) == 0
    put_objects(deployed, "late")
    capsys.readouterr()
    assert main(["destroy", str(saved), "--api-endpoint", deployed.url]) == 1
    assert f"bucket/{BUCKET} changed since" in error_of(capsys.readouterr())
    assert f"{STORED}/o/late" in deployed.store
