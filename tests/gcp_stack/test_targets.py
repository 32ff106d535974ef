"""`--target KEY` and `--replace KEY`, as Terraform has them."""

from __future__ import annotations

import json

import pytest

from gcp_stack.__main__ import main
from gcp_stack.engine import UnknownKey

PROJECT = "skybridge-dev-000000"
TOPIC = "topic/skybridge-dev-submissions"
APIS = 12


@pytest.fixture
def cli(fake, tmp_path):
    common = ["--env", "dev", "--api-endpoint", fake.url, "--poll-interval", "0.01"]
    return lambda command, *extra: main([command, *common, "--outputs-dir", str(tmp_path), *extra])


def planned(cli, capsys, *extra: str) -> dict[str, str]:
    capsys.readouterr()
    assert cli("plan", "--json", *extra) == 0
    return {c["key"]: c["action"] for c in json.loads(capsys.readouterr().out)["changes"]}


def test_a_target_plans_it_and_what_it_depends_on(cli, fake, capsys):
    changes = planned(cli, capsys, "--target", TOPIC)
    assert changes[TOPIC] == "create"
    assert len(changes) == 1 + APIS and all(k.startswith("service/") for k in changes if k != TOPIC)
    assert cli("deploy", "--auto-approve", "-target", TOPIC) == 0
    assert f"pubsub:projects/{PROJECT}/topics/skybridge-dev-submissions" in fake.store
    assert not any(key.startswith("cloudfunctions:") for key in fake.store)


def test_a_destroy_target_takes_what_depends_on_it(cli, deployed, capsys):
    changes = planned(cli, capsys, "--destroy", "--target", TOPIC)
    assert changes[TOPIC] == "delete"
    assert changes["function/skybridge-dev-store"] == "delete"  # triggered by the topic
    assert "bucket/skybridge-dev-000000-skybridge-dev-assets" not in changes
    assert not any(key.startswith("service/") for key in changes)
    assert cli("destroy", "--auto-approve", "--allow-destroy-data", "--target", TOPIC) == 0
    assert f"pubsub:projects/{PROJECT}/topics/skybridge-dev-submissions" not in deployed.store
    assert f"storage:b/{PROJECT}-skybridge-dev-assets" in deployed.store


def test_replace_replaces_what_has_no_diff(cli, deployed, capsys):
    key = "log_metric/skybridge-dev-submission-stored"
    changes = planned(cli, capsys, "--replace", key)
    assert {k: a for k, a in changes.items() if a != "no-op"} == {key: "replace"}
    before = deployed.count("metrics.delete"), deployed.count("metrics.create")
    assert cli("deploy", "--auto-approve", "--replace", key) == 0
    assert (deployed.count("metrics.delete"), deployed.count("metrics.create")) == (
        before[0] + 1, before[1] + 1)  # fmt: skip
    assert "Apply complete: 1 added, 0 changed, 1 destroyed." in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--target", "--replace"])
def test_an_unknown_key_names_the_closest_ones(cli, capsys, option):
    assert cli("plan", option, "topic/skybridge-dev-submision") == 1
    captured = capsys.readouterr()
    (line,) = [line for line in captured.out.splitlines() if line.startswith("error:")]
    assert f"{option} 'topic/skybridge-dev-submision' is not a resource of this stack" in line
    assert "did you mean 'topic/skybridge-dev-submissions'" in line
    assert "Traceback" not in captured.out + captured.err


def test_an_unknown_key_with_nothing_close_says_where_keys_are():
    assert "`python -m gcp_stack plan` lists the keys" in str(UnknownKey("--target", "zz", ["a"]))


def test_replace_is_not_for_destroy(cli, capsys):
    assert cli("plan", "--destroy", "--replace", TOPIC) == 1
    assert "--replace plans a deploy, not a destroy" in capsys.readouterr().out
