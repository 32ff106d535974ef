"""Engines that survive failovers: MySQL (RDS, credentials from Secrets Manager) and SQLite."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, SQLAlchemyError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from runtime.db.pool import FairQueuePool
from runtime.settings import Settings

# The MySQL protocol's CLIENT_MULTI_STATEMENTS capability (pymysql.constants.CLIENT).
MULTI_STATEMENTS = 1 << 16
ACCESS_DENIED = 1045  # MySQL ER_ACCESS_DENIED_ERROR: wrong user or password


class DatabaseSecret:
    """Credentials from the RDS-managed Secrets Manager secret, re-read now and then.

    Rotation changes the password under us: new connections pick up the new one within
    `ttl` seconds, and the ping after idle retires connections the server closed; a
    connection the server refuses with the old password (1045) re-reads the secret at once
    (`refresh`) and tries once more.
    """

    def __init__(self, arn: str, ttl: float = 300.0) -> None:
        self.arn = arn
        self.ttl = ttl
        self._value: dict[str, Any] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, Any]:
        with self._lock:
            self._read_at = float("-inf")
        return self.current()

    def current(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl:
                import boto3  # only on AWS; keeps local and function start-up lean

                client = boto3.client("secretsmanager")
                payload = client.get_secret_value(SecretId=self.arn)["SecretString"]
                self._value = json.loads(payload)
                self._read_at = time.monotonic()
            return self._value


def database_name(settings: Settings) -> str:
    """The database as the operator named it, without its password (for error messages)."""
    if settings.database_secret_arn:
        return f"the database with the credentials from {settings.database_secret_arn}"
    try:
        return make_url(settings.database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(settings.database_url)


def error_reason(error: SQLAlchemyError) -> str:
    """The driver's own words, on one line (SQLAlchemy adds the statement and a link)."""
    return str(error.orig if isinstance(error, DBAPIError) else error).splitlines()[0]


def create_db_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    options: dict[str, Any] = {
        # First come, first served (runtime.db.pool): QueuePool lets a greenlet that just
        # checked in take its connection back ahead of those waiting (p99 400 ms, not 90).
        "poolclass": FairQueuePool,
        "pool_size": settings.database_pool_size,
        # No overflow: a gevent worker runs many requests at once, and an overflow connection
        # is opened for one request and closed after it (a handshake each, 3x the CPU per
        # request measured); requests past the pool wait for a pooled one (pool_timeout).
        "max_overflow": 0,
        "pool_timeout": 5,
        # Checked before use only after a pause (see _ping_after_idle): a restarted server
        # or an RDS failover costs one retry, not a 500, and a busy API no round trip.
        "pool_pre_ping": False,
        "pool_recycle": 1800,
        # Every use is a `with engine.begin()` block, which ends its own transaction; the
        # pool's extra rollback on return costs a round trip per request for nothing.
        "pool_reset_on_return": None,
        # READ COMMITTED: a relay's SKIP LOCKED claim must not gap-lock the end of the outbox
        # (under REPEATABLE READ it blocks the API's inserts until the lock wait times out).
        "isolation_level": "READ COMMITTED",
        "connect_args": {"connect_timeout": 5, "charset": "utf8mb4"},
    }
    if settings.database_tls_ca:
        options["connect_args"]["ssl"] = {"ca": settings.database_tls_ca}
    engine = create_engine(url, **options)
    _ping_after_idle(engine)
    if url.get_driver_name() == "pymysql":

        @event.listens_for(engine, "do_connect")
        def _multi_statements(dialect, connection_record, cargs, cparams) -> None:
            # The accept path sends its INSERTs and COMMIT in one round trip
            # (runtime.db.inserts). Added to the flags the dialect sets (FOUND_ROWS), not
            # in place of them. Every statement we send binds its values, so a batch can
            # only ever hold our own statements.
            cparams["client_flag"] = cparams.get("client_flag", 0) | MULTI_STATEMENTS

    if settings.database_secret_arn:
        secret = DatabaseSecret(settings.database_secret_arn)

        @event.listens_for(engine, "do_connect")
        def _credentials(dialect, connection_record, cargs, cparams):
            def connect(value: dict[str, Any]):
                cparams.update(
                    host=value["host"],
                    port=int(value.get("port", 3306)),
                    user=value["username"],
                    password=value["password"],
                    database=value.get("dbname", cparams.get("database")),
                )
                return dialect.connect(*cargs, **cparams)

            try:
                return connect(secret.current())
            except dialect.loaded_dbapi.OperationalError as error:
                if error.args[:1] != (ACCESS_DENIED,):
                    raise
                return connect(secret.refresh())  # rotated since we read it

    return engine


# A connection back from the pool after this long is pinged before use. Below it, it was
# in use a moment ago; a server that went away since fails the statement, which the API
# answers 503 with Retry-After, and the pool replaces every connection of that moment.
IDLE_BEFORE_PING = 1.0


def _ping_after_idle(engine: Engine) -> None:
    """Pre-ping (SQLAlchemy's pessimistic disconnect handling) for connections that sat
    idle in the pool, not for every checkout: at a steady rate the ping was one of an
    accept's four round trips to the database."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection, record, proxy) -> None:
        checked_in = record.info.get("checked_in_at")
        if checked_in is None or time.monotonic() - checked_in < IDLE_BEFORE_PING:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out another (up to 3 times).
            raise DisconnectionError(str(error)) from error


def _sqlite_engine(url) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 15},
        pool_reset_on_return=None,  # as for MySQL: every use ends its own transaction
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, connection_record) -> None:
        # pysqlite's own transaction handling defers BEGIN; take the write lock up front
        # so concurrent writers queue on busy_timeout instead of failing to upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=15000")
        _journal_mode_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # Straight to the driver: this runs once per transaction, on the API's hot path.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")

    return engine


def _journal_mode_wal(cursor, timeout: float = 15.0) -> None:
    """Switch a new database file to WAL (the mode persists in the file). Processes that
    open a new file together (gunicorn's workers) race for this; SQLite answers the losers
    "database is locked" at once, without waiting on busy_timeout, so wait here."""
    for attempt in Retrying(
        retry=retry_if_exception(
            lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e)
        ),
        wait=wait_exponential(multiplier=0.005, max=0.2),
        stop=stop_after_delay(timeout),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")
