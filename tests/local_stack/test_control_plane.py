"""The fake control plane answers the way Google's APIs do, checked by discovery documents."""

from __future__ import annotations

import json
import time

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from gcp_stack.api import endpoint
from local_stack.control_plane import ControlPlane

TOPIC = "projects/p/topics/t"


@pytest.fixture
def fake():
    with ControlPlane() as plane:
        yield plane


def client(fake, api: str, version: str):
    return discovery.build(
        api, version, credentials=AnonymousCredentials(), static_discovery=True,
        client_options={"api_endpoint": endpoint(fake.url, api, version)},
    )  # fmt: skip


def error_of(call) -> tuple[int, str]:
    with pytest.raises(HttpError) as failed:
        call.execute()
    return failed.value.status_code, json.loads(failed.value.content)["error"]["message"]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"labelz": {"a": "b"}}, 'Unknown name "labelz"'),
        ({"state": "ACTIVE"}, "output-only"),
        ({"labels": {"a": 5}}, "expected a string"),
        ({"messageStoragePolicy": {"enforceInTransit": "yes"}}, "expected a boolean"),
        ({"messageRetentionDuration": 600}, "expected a string"),
    ],
)
def test_body_google_would_reject_is_a_400_naming_the_field(fake, body, complaint):
    topics = client(fake, "pubsub", "v1").projects().topics()
    status, message = error_of(topics.create(name=TOPIC, body=body))
    assert (status, complaint in message) == (400, True), message


def test_bad_enum_value_is_a_400(fake):
    functions = client(fake, "cloudfunctions", "v2").projects().locations().functions()
    body = {"serviceConfig": {"ingressSettings": "ALLOW_EVERYTHING"}}
    status, message = error_of(
        functions.create(parent="projects/p/locations/r", functionId="f", body=body)
    )
    assert status == 400
    assert "ALLOW_EVERYTHING" in message


def test_nested_unknown_field_is_named_by_its_path(fake):
    buckets = client(fake, "storage", "v1").buckets()
    body = {"name": "b", "iamConfiguration": {"uniformBucketLevelAccess": {"enable": True}}}
    status, message = error_of(buckets.insert(project="p", body=body))
    assert status == 400
    assert "iamConfiguration.uniformBucketLevelAccess" in message


def test_create_get_patch_delete_round_trip(fake):
    topics = client(fake, "pubsub", "v1").projects().topics()
    topics.create(name=TOPIC, body={"labels": {"a": "b"}}).execute()
    assert error_of(topics.create(name=TOPIC, body={}))[0] == 409
    body = {"topic": {"labels": {"a": "c"}}, "updateMask": "labels"}
    topics.patch(name=TOPIC, body=body).execute()
    assert topics.get(topic=TOPIC).execute()["labels"] == {"a": "c"}
    topics.delete(topic=TOPIC).execute()
    assert error_of(topics.get(topic=TOPIC))[0] == 404


def test_set_iam_policy_with_a_stale_etag_is_a_conflict(fake):
    topics = client(fake, "pubsub", "v1").projects().topics()
    topics.create(name=TOPIC, body={}).execute()
    stale = topics.getIamPolicy(resource=TOPIC).execute()
    binding = {"role": "roles/pubsub.viewer", "members": ["user:a@example.com"]}
    topics.setIamPolicy(resource=TOPIC, body={"policy": stale | {"bindings": [binding]}}).execute()
    assert error_of(topics.setIamPolicy(resource=TOPIC, body={"policy": stale}))[0] == 409


def test_long_running_operation_is_done_on_its_first_poll(fake):
    pools = client(fake, "iam", "v1").projects().locations().workloadIdentityPools()
    op = pools.create(
        parent="projects/p/locations/global", workloadIdentityPoolId="pool", body={}
    ).execute()
    assert op["done"] is False
    polled = pools.operations().get(name=op["name"]).execute()
    assert polled["done"] is True
    assert polled["response"]["state"] == "ACTIVE"


def test_fault_after_applying_loses_the_answer_but_keeps_the_change(fake):
    fake.fail_next("pubsub.projects.topics.create", 503, after_applying=True)
    topics = client(fake, "pubsub", "v1").projects().topics()
    assert error_of(topics.create(name=TOPIC, body={}))[0] == 503
    assert topics.get(topic=TOPIC).execute()["name"] == TOPIC


def test_latency_is_added_to_every_request():
    with ControlPlane(latency_seconds=0.05) as fake:
        topics = client(fake, "pubsub", "v1").projects().topics()
        started = time.perf_counter()
        error_of(topics.get(topic=TOPIC))
        assert time.perf_counter() - started >= 0.05


def test_state_loads_into_a_fresh_fake(fake):
    client(fake, "pubsub", "v1").projects().topics().create(name=TOPIC, body={}).execute()
    with ControlPlane() as other:
        other.load(fake.state())
        assert client(other, "pubsub", "v1").projects().topics().get(topic=TOPIC).execute()
