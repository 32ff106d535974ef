"""One definition of acceptable JSON (runtime.jsondoc), held at the API's edge and by every
later stage: anything the API accepts, the relay serialises, ingest publishes and store
writes; anything else is a 4xx naming the field at the API, and a per-item rejection (never
a whole batch) at ingest, and garbage acknowledged (never a retry loop) at store."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import jsondoc, outbox
from runtime.api import create_app
from runtime.api.services import services
from runtime.envelope import canonical_json, object_name
from runtime.relay.ingest_client import body, serialise
from tests.runtime.test_functions import deliver, item, pull


def nest(depth: int, leaf: object = 1) -> object:
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def submission_body(data_depth: int) -> bytes:
    """A body whose deepest value is `data_depth` levels below `data` (the body is 1)."""
    return json.dumps({"type": "t", "data": {"x": nest(data_depth - 1)}}).encode()


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert "Traceback" not in response.get_data(as_text=True)
    return response.get_json(force=True)


def post(client, raw: bytes, **headers):
    return client.post(
        "/v1/submissions", data=raw, headers={"Content-Type": "application/json", **headers}
    )


# -- the API's edge ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"type":"a","data":{"x":1e400}}', "/data/x"),
        (b'{"type":"a","data":{"x":[-1e999]}}', "/data/x/0"),
        (b'{"type":"a","data":{"x":"\\udfff"}}', "/data/x"),
        (b'{"type":"a","data":{"\\ud800":1}}', "/data"),
        (b'{"type":"a","data":{"n":9007199254740992}}', "/data/n"),
        (b'{"type":"a","data":{"n":-9007199254740992}}', "/data/n"),
        (b'{"type":"a","data":{"n":1e20}}', "/data/n"),
        (b'{"type":"a","data":{"n":[1' + b"0" * 5000 + b"]}}", "/data/n/0"),
        (b'{"type":"a","data":{"n":-1' + b"0" * 5000 + b"}}", "/data/n"),
        (b'{"type":"a","data":{"n":12345678901234567}}', "/data/n"),
        (b'{"type":"a","data":{"n":[-9.007199254740992e15]}}', "/data/n/0"),
        (b'{"type":"a","data":{"k":1,"k":2}}', "/data"),
        (submission_body(jsondoc.MAX_DEPTH), "/data/x"),
        (submission_body(199), "/data/x"),  # past pydantic's JSON parser (200 levels)
    ],
    ids=[
        "overflow",
        "negative-overflow",
        "lone-surrogate",
        "lone-surrogate-key",
        "int-2^53",
        "int--2^53",
        "integer-in-exponent-notation",
        "int-of-5001-digits",  # past Python's 4,300-digit int() limit: was a 500
        "negative-int-of-5001-digits",
        "int-of-17-digits",
        "negative-float-2^53",
        "duplicate-key",
        "depth-limit+1",
        "depth-200",
    ],
)
def test_json_outside_the_policy_is_422_naming_the_field(client, raw, field):
    body = problem(post(client, raw), 422)
    assert body["errors"][0]["field"].startswith(field), body
    assert body["detail"].startswith(field)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"a","data":{"x":NaN}}',
        b'{"type":"a","data":{"x":Infinity}}',
        b'{"type":"a","data":{"x":"\xed\xbf\xbf"}}',  # a surrogate encoded in UTF-8 bytes
        b"[" * 100_000,
    ],
    ids=["nan", "infinity", "surrogate-bytes", "depth-100000"],
)
def test_what_is_not_json_is_400(client, raw):
    problem(post(client, raw), 400)


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, gzip"])
def test_a_compressed_body_is_415_saying_what_is_taken(client, coding):
    response = post(
        client, gzip.compress(b'{"type":"a","data":{}}'), **{"Content-Encoding": coding}
    )
    body = problem(response, 415)
    assert "Content-Encoding" in body["detail"]
    assert response.headers["Accept-Encoding"] == "identity"


def test_identity_is_no_coding_at_all(client):
    response = post(client, b'{"type":"a","data":{}}', **{"Content-Encoding": "Identity"})
    assert response.status_code == 202, response.get_data(as_text=True)


def test_the_limits_themselves_are_accepted(client):
    for raw in (
        submission_body(jsondoc.MAX_DEPTH - 1),
        b'{"type":"a","data":{"n":9007199254740991,"m":-9007199254740991,"f":9.007199254740991e15,'
        b'"g":-0.5,"h":5e-324}}',
        r'{"type":"a","data":{"\ud83d\ude00":"\ud83d\ude00 é","k":"😀"}}'.encode(),
    ):
        assert post(client, raw).status_code == 202, raw


def test_a_canonical_form_over_the_limit_is_413(database_url):
    """`1e5` is `100000.0` in canonical JSON: the limit holds for what is stored too."""
    app = create_app({"database_url": database_url, "migrate_on_start": True, "metrics": "none"})
    limit = services(app).settings.max_body_bytes
    numbers = ",".join(["1e5"] * (limit // 5))
    raw = f'{{"type":"a","data":{{"n":[{numbers}]}}}}'.encode()
    assert len(raw) <= limit
    problem(post(app.test_client(), raw), 413)
    services(app).engine.dispose()


# -- ingest and store judge the same way ---------------------------------------------------


def test_ingest_rejects_bad_items_one_by_one(ingest, topic):
    _, subscription, subscriber = topic
    good = item()
    items = [
        item({"x": nest(150)}),  # deeper than the policy, not yet pydantic's limit
        item() | {"data": {"x": nest(250)}},  # past pydantic's limit
        good,
        item() | {"data": {"x": "\udfff"}},
        item() | {"data": {"x": 2**64}},
        item() | {"data": {"x": "OVERFLOW"}},
        item() | {"data": {"x": "LONG"}},
    ]
    raw = json.dumps({"schema_version": "1", "items": items})
    raw = raw.replace('"OVERFLOW"', "1e400").replace('"LONG"', "9" * 5000)
    response = ingest.post("/", data=raw.encode(), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 2 + ["published"] + ["rejected"] * 4
    assert [r["submission_id"] for r in results] == [i["submission_id"] for i in items]
    published = pull(subscriber, subscription, 1)
    assert [m.message.attributes["submission_id"] for m in published] == [good["submission_id"]]


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(item() | {"data": {"f": "OVERFLOW"}}).replace('"OVERFLOW"', "1e400").encode(),
        json.dumps(item() | {"data": {"x": "\udfff"}}).encode(),
        json.dumps(item() | {"data": {"x": nest(250)}}).encode(),
        b"\xff\xfe not utf-8",
        json.dumps(item() | {"data": {"n": "LONG"}}).replace('"LONG"', "9" * 5000).encode(),
    ],
    ids=["overflow", "lone-surrogate", "depth-250", "not-utf8", "int-of-5000-digits"],
)
def test_store_acknowledges_garbage_instead_of_failing_forever(store, bucket, data):
    response = deliver(store, data)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert list(bucket.list_blobs()) == []


def test_store_acknowledges_a_push_without_a_message_object(store, bucket):
    response = store.post(
        "/",
        json={"message": "not an object"},
        headers={
            "ce-id": "1",
            "ce-specversion": "1.0",
            "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        },
    )
    assert response.status_code == 200


# -- the property: API → relay → ingest → store ---------------------------------------------

_strings = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _strings
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_strings, children, max_size=4)
    ),
    max_leaves=12,
)
_documents = st.one_of(
    st.dictionaries(_strings, _values, max_size=4),
    st.integers(min_value=1, max_value=90).map(lambda depth: {"deep": nest(depth)}),
)


def _raw(data: dict) -> bytes:
    # ensure_ascii writes lone surrogates as escapes; non-finite floats become the JSON
    # number 1e400 (overflow) or the non-JSON literal NaN.
    text = json.dumps({"type": "t", "data": data}, ensure_ascii=True, allow_nan=True)
    return text.replace("-Infinity", "-1e400").replace("Infinity", "1e400").encode()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=_documents)
def test_whatever_the_api_accepts_every_later_stage_accepts(
    tmp_path_factory, ingest, topic, store, bucket, data
):
    _, subscription, subscriber = topic
    directory = Path(tmp_path_factory.mktemp("property"))
    app = create_app(
        {
            "database_url": f"sqlite:///{directory / 'p.sqlite3'}",
            "migrate_on_start": True,
            "metrics": "none",
            "log_level": "ERROR",
        }
    )
    raw = _raw(data)
    response = post(app.test_client(), raw)
    assert response.status_code in (202, 400, 413, 422), response.get_data(as_text=True)
    if response.status_code != 202:
        assert response.mimetype == "application/problem+json"
        services(app).engine.dispose()
        return
    sent = json.loads(raw)["data"]
    (claimed,) = outbox.claim(services(app).engine, 10, 60)
    services(app).engine.dispose()

    # The relay's serialisation, then the real ingest function.
    answer = ingest.post(
        "/", data=body([serialise(claimed, "aws")]), content_type="application/json"
    )
    assert answer.status_code == 200
    (result,) = answer.get_json()["results"]
    assert result["status"] == "published", result

    # The message as Pub/Sub delivers it, then the real store function.
    (message,) = pull(subscriber, subscription, 1)
    stored = deliver(store, message.message.data, message_id=message.message.message_id)
    assert stored.status_code == 200
    blob = bucket.get_blob(object_name(claimed.submission_id, claimed.received_at))
    assert blob is not None, "store accepted the message but wrote nothing"
    asset = json.loads(blob.download_as_bytes())
    assert canonical_json(asset["data"]) == canonical_json(sent)
    assert asset["checksum_verified"] is True
