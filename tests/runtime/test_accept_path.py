"""The accept path's database work on MySQL/MariaDB: one round trip per accept, committed
before it returns, and connections the server dropped replaced without losing an accept."""

from __future__ import annotations

import pymysql.connections
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

import runtime.db.engine
from runtime.api import create_app
from runtime.api.services import services
from runtime.db import create_db_engine, inserts, migrate, outbox, submissions
from runtime.envelope import SubmissionIn
from runtime.settings import Settings
from runtime.submissions import accept
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.mysql

SUBMISSION = SubmissionIn(type="accept.path", data={"text": "it's; a ; test", "n": 1})


@pytest.fixture
def proxy(mysql_url):
    """The database behind a line the test can cut (a restart, a failover)."""
    url = make_url(mysql_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 3306) as line:
        yield line, url.set(host="127.0.0.1", port=line.port).render_as_string(False)


def engine_for(url: str):
    engine = create_db_engine(Settings(database_url=url, metrics="none"))
    migrate(engine)
    return engine


def rows(url: str, submission_id: str) -> tuple[int, int]:
    """(submissions, outbox rows) for one id, read on a connection of another engine."""
    other = create_engine(url)
    try:
        with other.begin() as connection:
            stored = connection.scalar(
                select(func.count()).where(submissions.c.id == submission_id)
            )
            queued = connection.scalar(
                select(func.count()).where(outbox.c.submission_id == submission_id)
            )
    finally:
        other.dispose()
    return stored, queued


def test_an_accept_is_one_round_trip_and_committed_when_it_returns(mysql_url, monkeypatch):
    engine = engine_for(mysql_url)
    try:
        accept(engine, SUBMISSION, None)  # the pool's connection exists from here on
        writes: list[bytes] = []
        original = pymysql.connections.Connection._write_bytes

        def counted(self, data: bytes) -> None:
            writes.append(data)
            original(self, data)

        monkeypatch.setattr(pymysql.connections.Connection, "_write_bytes", counted)
        accepted = accept(engine, SUBMISSION, None)
        monkeypatch.undo()
        # No ping for a connection in use a moment ago; the INSERTs and COMMIT in one batch.
        assert len(writes) == 1, [w[:40] for w in writes]
        assert rows(mysql_url, accepted.row["id"]) == (1, 1)
    finally:
        engine.dispose()


def test_values_with_quotes_and_semicolons_are_stored_exactly(mysql_url):
    engine = engine_for(mysql_url)
    try:
        tricky = SubmissionIn(type="x", data={"q": "a'; DROP TABLE outbox; --", "b": "\\';"})
        accepted = accept(engine, tricky, None)
        with engine.begin() as connection:
            body = connection.scalar(
                select(submissions.c.body).where(submissions.c.id == accepted.row["id"])
            )
        assert body == tricky.canonical_json().decode()
        assert rows(mysql_url, accepted.row["id"]) == (1, 1)
    finally:
        engine.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(proxy, monkeypatch):
    line, url = proxy
    engine = engine_for(url)
    try:
        accept(engine, SUBMISSION, None)
        line.cut()  # the server restarts while the connection sits in the pool
        line.restore()
        monkeypatch.setattr(runtime.db.engine, "IDLE_BEFORE_PING", 0.0)
        accepted = accept(engine, SUBMISSION, None)  # pinged, found dead, replaced
        assert rows(url, accepted.row["id"]) == (1, 1)
    finally:
        engine.dispose()


def test_a_connection_dropped_in_use_costs_one_503_then_every_connection_is_new(proxy):
    line, url = proxy
    app = create_app({"database_url": url, "migrate_on_start": True, "metrics": "none"})
    engine = services(app).engine
    try:
        # Two pooled connections, both used a moment ago (so neither is pinged).
        first, second = engine.raw_connection(), engine.raw_connection()
        first.close()
        second.close()
        line.cut()
        line.restore()
        client = app.test_client()
        body = {"type": SUBMISSION.type, "data": SUBMISSION.data}
        failed = client.post("/v1/submissions", json=body)
        assert failed.status_code == 503
        assert failed.headers["Retry-After"]
        # The pool started afresh: the other dead connection is not handed out.
        answers = [client.post("/v1/submissions", json=body).status_code for _ in range(3)]
        assert answers == [202, 202, 202]
    finally:
        engine.dispose()


def test_the_dialect_keeps_its_own_client_flags(mysql_url):
    """MULTI_STATEMENTS is added to what SQLAlchemy sets (FOUND_ROWS: rowcount is rows
    matched, which the outbox's updates rely on), not put in its place."""
    from pymysql.constants import CLIENT

    engine = engine_for(mysql_url)
    try:
        connection = engine.raw_connection()
        try:
            flags = connection.dbapi_connection.client_flag
        finally:
            connection.close()
        assert flags & CLIENT.FOUND_ROWS and flags & CLIENT.MULTI_STATEMENTS
    finally:
        engine.dispose()


def test_the_batch_binds_values_exactly_as_the_driver_does(mysql_url):
    engine = engine_for(mysql_url)
    raw = engine.raw_connection()
    driver, cursor = raw.dbapi_connection, raw.cursor()

    @given(value=st.text(alphabet=st.sampled_from("a\\'\"\0\n\r\x1a;é\U0001f600 ")))
    @settings(max_examples=300, deadline=None)
    def binds_the_same(value: str) -> None:
        for sql, params in (
            ("SELECT %s, %s, %s", (value, 1, None)),
            ("%(a)s %(b)s", {"a": value, "b": value.encode()}),
        ):
            assert inserts._mogrify(driver, sql, params) == cursor.mogrify(sql, params)

    try:
        binds_the_same()
    finally:
        raw.close()
        engine.dispose()
