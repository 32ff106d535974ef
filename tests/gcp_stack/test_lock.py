"""One deploy or destroy at a time: a lock object in Cloud Storage (ifGenerationMatch=0)."""

from __future__ import annotations

import collections
import contextlib
import threading

import pytest

from gcp_stack.__main__ import main
from gcp_stack.api import Api
from gcp_stack.engine import Engine
from gcp_stack.lock import StackLock

PROJECT = "skybridge-dev-000000"


@pytest.fixture
def cli(fake, tmp_path):
    common = ["--env", "dev", "--api-endpoint", fake.url, "--poll-interval", "0.01"]
    return lambda command, *extra: main([command, *common, "--outputs-dir", str(tmp_path), *extra])


def other_machine(fake) -> StackLock:
    lock = StackLock(Api(endpoint=fake.url, deadline=1.0), PROJECT, "skybridge-dev")
    lock.acquire("deploy")
    return lock


def test_a_deploy_while_another_holds_the_lock_refuses_naming_the_holder(cli, fake, capsys):
    held = other_machine(fake)
    assert cli("deploy", "--auto-approve") == 1
    out = capsys.readouterr().out
    assert "locked by" in out and "`deploy`" in out and "since" in out and "force-unlock" in out
    assert not any("/functions/" in key for key in fake.store)
    held.release()
    assert cli("deploy", "--auto-approve") == 0


def test_force_unlock_clears_a_stale_lock(cli, fake, capsys):
    other_machine(fake)  # a run that died holding it
    assert cli("destroy", "--auto-approve") == 1
    assert cli("force-unlock") == 0
    assert "removed" in capsys.readouterr().out
    assert cli("deploy", "--auto-approve") == 0
    assert cli("force-unlock") == 0  # released after the deploy: nothing to remove
    assert "no lock held" in capsys.readouterr().out


def test_the_lock_is_released_when_apply_fails(cli, fake):
    fake.fail_next("pubsub.projects.topics.create", 400, "bad request")
    assert cli("deploy", "--auto-approve") == 1
    assert cli("deploy", "--auto-approve") == 0


def deploy_twice_at_once(cli, monkeypatch) -> list[int]:
    """Two deploys started together, each held at the start of its apply until the other
    gets there too (or 3 s pass: the lock keeps the second from getting there), so that
    without the lock both are sure to plan before either applies."""
    both_planned = threading.Barrier(2, timeout=3)
    apply = Engine.apply

    def apply_when_both_planned(self, *args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):  # the other never got here
            both_planned.wait()
        return apply(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "apply", apply_when_both_planned)
    codes: list[int] = []
    runs = [
        threading.Thread(target=lambda: codes.append(cli("deploy", "--auto-approve")))
        for _ in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    return sorted(codes)


def monitoring_counts(fake) -> collections.Counter:
    return collections.Counter(
        (key.rsplit("/", 1)[0], resource.get("displayName"))
        for key, resource in fake.store.items()
        if key.startswith("monitoring:")
    )


def test_two_deploys_at_once_leave_exactly_one_of_everything(cli, fake, monkeypatch, capsys):
    assert deploy_twice_at_once(cli, monkeypatch) == [0, 1]
    assert "locked by" in capsys.readouterr().out
    named = monitoring_counts(fake)
    assert named and max(named.values()) == 1, named


def test_without_the_lock_two_deploys_at_once_duplicate(cli, fake, monkeypatch):
    """The test above can fail: with the lock switched off, both deploys apply the same
    plan and every alert policy and dashboard is made twice."""
    monkeypatch.setattr(StackLock, "acquire", lambda self, command: None)
    assert deploy_twice_at_once(cli, monkeypatch) == [0, 0]
    named = monitoring_counts(fake)
    assert named and min(named.values()) == 2, named
