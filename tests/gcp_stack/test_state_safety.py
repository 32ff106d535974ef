"""The stack owns only what it declared and labelled: someone else's labels, resources and
regions are left alone unless asked (issue 12's state safety)."""

from __future__ import annotations

from gcp_stack.resources import STACK_LABEL
from tests.gcp_stack.conftest import engine_on
from tests.local_stack.test_control_plane import client

PROJECT = "skybridge-dev-000000"
TOPIC = f"projects/{PROJECT}/topics/skybridge-dev-submissions"


def test_a_label_someone_else_added_survives_our_update(deployed, artifact):
    deployed.store[f"pubsub:{TOPIC}"]["labels"]["team"] = "other"
    engine = engine_on(deployed.url, artifact)
    topic = engine.resources["topic/skybridge-dev-submissions"]
    topic.labels = topic.labels | {"tier": "gold"}  # type: ignore[attr-defined]  # a label of ours changes
    plan = engine.plan()
    (change,) = plan.pending
    assert change.mask == ["labels"]
    engine.apply(plan)
    labels = deployed.store[f"pubsub:{TOPIC}"]["labels"]
    assert labels == {"team": "other", "tier": "gold", STACK_LABEL: "skybridge-dev"}


def test_an_unlabelled_resource_is_refused_then_imported(cli, fake, capsys):
    topics = client(fake, "pubsub", "v1").projects().topics()
    topics.create(name=TOPIC, body={"labels": {"team": "other"}}).execute()
    assert cli("plan") == 1
    out = capsys.readouterr().out
    assert "! topic/skybridge-dev-submissions" in out
    assert "python -m gcp_stack import" in out
    assert cli("deploy", "--auto-approve") == 1
    assert cli("import", "topic/skybridge-dev-submissions") == 0
    assert fake.store[f"pubsub:{TOPIC}"]["labels"] == {
        "team": "other",
        STACK_LABEL: "skybridge-dev",
    }
    assert cli("deploy", "--auto-approve") == 0
    assert cli("plan", "--detailed-exitcode") == 0


def test_destroy_deletes_only_what_carries_the_stack_label(cli, deployed):
    bucket = f"storage:b/{PROJECT}-skybridge-dev-assets"
    del deployed.store[bucket]["labels"][STACK_LABEL]  # someone else's bucket of our name
    assert cli("destroy", "--auto-approve", "--allow-destroy-data") == 0
    assert bucket in deployed.store
    assert f"pubsub:{TOPIC}" not in deployed.store


def test_a_region_change_deletes_the_old_regions_functions(cli, deployed, capsys):
    assert cli("deploy", "--auto-approve", "--region", "europe-west4") == 0
    functions = [k for k in deployed.store if "/functions/" in k]
    assert functions and all("/locations/europe-west4/" in k for k in functions), functions
    assert "function/skybridge-dev-ingest@europe-west1" in capsys.readouterr().out
