"""The app's own limit answers 429 problem+json with Retry-After, per client."""

from __future__ import annotations

import math

import pytest
from flask import Request
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder

from runtime.api import create_app
from runtime.api.limits import RateLimiter, client_address
from runtime.api.services import services

PHOTO = {"type": "photo", "data": {"n": 1}}


@pytest.fixture
def client(database_url):
    """The API behind one trusted proxy hop, 6 submissions per client per minute."""
    app = create_app(
        {
            "database_url": database_url,
            "migrate_on_start": True,
            "metrics": "none",
            "submissions_per_minute": 6,
            "trusted_proxy_hops": 1,
        }
    )
    yield app.test_client()
    services(app).engine.dispose()


def test_past_the_limit_a_client_gets_429_with_retry_after(client):
    one = {"X-Forwarded-For": "198.51.100.7"}
    other = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}  # the ALB appended the last
    answers = [client.post("/v1/submissions", json=PHOTO, headers=one) for _ in range(3)]
    codes = [answer.status_code for answer in answers]
    assert codes == [202, 429, 429], codes  # a burst of one, then one every 10 s
    limited = answers[-1]
    assert limited.mimetype == "application/problem+json"
    assert limited.get_json()["status"] == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert client.post("/v1/submissions", json=PHOTO, headers=other).status_code == 202
    assert client.get("/healthz", headers=one).status_code == 200, "only submissions count"


def test_the_bucket_refills_at_the_rate():
    limiter = RateLimiter(per_minute=60, burst=2)
    assert [limiter.take("a", now=0.0) for _ in range(2)] == [0.0, 0.0]
    wait = limiter.take("a", now=0.0)
    assert math.isclose(wait, 1.0)
    assert limiter.take("a", now=1.0) == 0.0


def test_memory_is_bounded_by_the_number_of_clients():
    limiter = RateLimiter(per_minute=60, clients=3)
    for n in range(10):
        limiter.take(f"c{n}", now=0.0)
    assert len(limiter._buckets) == 3


def request_with(forwarded: list[str], peer: str = "10.0.1.5") -> Request:
    """A request as the instance receives it from the ALB at `peer`."""
    headers = Headers([("X-Forwarded-For", value) for value in forwarded])
    return Request(
        EnvironBuilder(headers=headers, environ_base={"REMOTE_ADDR": peer}).get_environ()
    )


@pytest.mark.parametrize(
    "forwarded",
    [
        ["203.0.113.9"],
        ["198.51.100.1, 203.0.113.9"],  # the client wrote the first entry itself
        ["1.1.1.1, 2.2.2.2,3.3.3.3 , 203.0.113.9"],
        ["not an address, , 203.0.113.9"],
        ["198.51.100.1", "203.0.113.9"],  # its own header: WSGI joins it before the ALB's
    ],
)
def test_behind_one_proxy_the_client_is_the_address_the_proxy_saw(forwarded):
    assert client_address(request_with(forwarded), trusted_hops=1) == "203.0.113.9"


def test_without_a_trusted_proxy_the_header_is_ignored():
    assert client_address(request_with(["203.0.113.9"]), trusted_hops=0) == "10.0.1.5"
    assert client_address(request_with([]), trusted_hops=1) == "10.0.1.5"


def test_spoofed_entries_do_not_escape_the_limit(client):
    codes = [
        client.post(
            "/v1/submissions", json=PHOTO,
            headers={"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.9"},
        ).status_code
        for n in range(4)
    ]  # fmt: skip
    assert codes == [202, 429, 429, 429], codes
