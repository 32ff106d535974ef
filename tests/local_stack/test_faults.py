"""Fault tests against the whole local stack: a cloud (or a part of one) goes away and
comes back, and every accepted submission still ends up stored exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
import requests
from sqlalchemy.engine import make_url

from local_stack.ports import free_port
from local_stack.processes import Child, http_ready
from local_stack.stack import LocalStack, Options
from runtime import commands
from smoke import storage
from tests.fakes import poison_store
from tests.fakes.poison_store import POISON_TYPE
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
POISON_STORE = poison_store.__file__


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    options = Options(
        workdir=tmp_path_factory.mktemp("stack"),
        store_source=POISON_STORE,
        relay_env={"SKYBRIDGE_RELAY_LEASE_SECONDS": "2"},
    )
    with LocalStack(options) as running:
        yield running


def post(stack: LocalStack, count: int, type_: str = "fault.test") -> list[dict]:
    session = requests.Session()
    session.trust_env = False
    accepted = []
    for index in range(count):
        body = {"type": type_, "data": {"index": index, "nonce": uuid.uuid4().hex}}
        response = session.post(f"{stack.url('api')}/v1/submissions", json=body, timeout=10)
        assert response.status_code == 202, response.text
        accepted.append(response.json() | {"body": body})
    return accepted


def stored_objects(stack: LocalStack) -> dict[str, dict]:
    return storage.stored_assets(stack.bucket())


def wait_stored(stack: LocalStack, accepted: list[dict], timeout: float = 60) -> dict[str, dict]:
    wanted = {item["object_name"] for item in accepted}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        objects = stored_objects(stack)
        if wanted <= objects.keys():
            return objects
        time.sleep(0.25)
    missing = wanted - stored_objects(stack).keys()
    pytest.fail(f"{len(missing)} of {len(wanted)} submissions never reached storage")


def statuses(stack: LocalStack, accepted: list[dict]) -> dict[str, dict]:
    """What the AWS side itself says about each submission."""
    session = requests.Session()
    session.trust_env = False
    api = stack.url("api")
    return {
        item["id"]: session.get(f"{api}/v1/submissions/{item['id']}", timeout=10).json()
        for item in accepted
    }


def wait_confirmed(stack: LocalStack, accepted: list[dict], timeout: float = 60) -> dict:
    """Every submission's status once the AWS side says `stored` for each (or fail)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = statuses(stack, accepted)
        if all(body["status"] == "stored" for body in shown.values()):
            return shown
        if time.monotonic() > deadline:
            left = sorted({body["status"] for body in shown.values()} - {"stored"})
            pending = sum(body["status"] != "stored" for body in shown.values())
            pytest.fail(f"{pending} of {len(accepted)} never confirmed stored (still {left})")
        time.sleep(0.25)


def assert_stored_exactly_once(objects: dict[str, dict], accepted: list[dict]) -> None:
    for item in accepted:
        asset = objects[item["object_name"]]
        assert asset["submission_id"] == item["id"]
        assert asset["data"] == item["body"]["data"]
        assert asset["sha256"] == item["sha256"]
    names = [item["object_name"] for item in accepted]
    assert len(set(names)) == len(names)


def test_ingest_down_then_back_loses_nothing(stack):
    stack.stop_component("ingest")
    accepted = post(stack, 40)
    time.sleep(1.5)  # the relay fails against the dead endpoint meanwhile
    assert not {item["object_name"] for item in accepted} & stored_objects(stack).keys()
    stack.start_component("ingest")
    objects = wait_stored(stack, accepted)
    assert_stored_exactly_once(objects, accepted)
    assert {body["status"] for body in wait_confirmed(stack, accepted).values()} == {"stored"}


def test_relay_killed_mid_batch_loses_nothing_and_stores_once(stack):
    stack.children["ingest"].signal(signal.SIGSTOP)  # the relay's POST hangs: a batch in hand
    try:
        accepted = post(stack, 30)
        time.sleep(1.0)
        stack.kill_component("relay")
    finally:
        stack.children["ingest"].signal(signal.SIGCONT)
    stack.start_component("relay")
    objects = wait_stored(stack, accepted)
    assert_stored_exactly_once(objects, accepted)


def test_message_store_always_fails_on_is_dead_lettered_alone(stack):
    (poison,) = post(stack, 1, type_=POISON_TYPE)
    healthy = post(stack, 10)
    assert_stored_exactly_once(wait_stored(stack, healthy), healthy)

    subscriber = stack.subscriber()
    deadline = time.monotonic() + 60
    dead = []
    while not dead and time.monotonic() < deadline:
        response = subscriber.pull(
            subscription=stack.names.dead_letter_subscription, max_messages=10, timeout=5
        )
        dead = [
            m
            for m in response.received_messages
            if m.message.attributes.get("submission_id") == poison["id"]
        ]
        if not dead:
            time.sleep(0.5)
    assert dead, "the poison message never reached the dead-letter subscription"
    assert json.loads(dead[0].message.data)["type"] == POISON_TYPE
    assert poison["object_name"] not in stored_objects(stack)


@pytest.mark.mysql
def test_database_away_gives_503_then_recovers_without_restart(mysql_database_url, tmp_path):
    url = make_url(mysql_database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 3306) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        env = {
            "PATH": "/usr/bin:/bin",
            "SKYBRIDGE_DATABASE_URL": proxied,
            "SKYBRIDGE_METRICS": "none",
        }
        subprocess.run(commands.migrate_argv(), env=env, check=True, capture_output=True)
        port = free_port()
        api = Child("api", commands.api_argv(f"127.0.0.1:{port}", 1), env, tmp_path)
        api.start(http_ready(f"http://127.0.0.1:{port}/healthz"))
        base = f"http://127.0.0.1:{port}"
        body = {"type": "db.fault", "data": {}}
        try:
            assert requests.post(f"{base}/v1/submissions", json=body, timeout=10).status_code == 202
            proxy.cut()
            for response in (
                requests.post(f"{base}/v1/submissions", json=body, timeout=15),
                requests.get(f"{base}/readyz", timeout=15),
            ):
                assert response.status_code == 503
                assert response.headers["Content-Type"] == "application/problem+json"
                assert int(response.headers["Retry-After"]) > 0
            proxy.restore()
            deadline = time.monotonic() + 20
            status = 0
            while status != 202 and time.monotonic() < deadline:
                status = requests.post(f"{base}/v1/submissions", json=body, timeout=10).status_code
                time.sleep(0.2)
            assert status == 202, "the API did not recover by itself"
            assert api.alive
        finally:
            api.stop()


def test_child_processes_do_not_outlive_the_stack(tmp_path):
    options = Options(workdir=tmp_path)
    stack = LocalStack(options)
    stack.start()
    pids = [child.process.pid for child in stack.children.values()]
    stack.kill_component("relay")  # a child that died first
    stack.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
