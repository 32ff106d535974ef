"""Fixtures shared by every test: databases, emulators, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import aws_stack  # noqa: F401 — points jsii at the project's Node before anything loads aws_cdk
from tests import mysql_server

_mysql_unavailable: list[str] = []


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    url, throwaway, how = mysql_server.server_url()
    if url is None:
        _mysql_unavailable.append(how)
        if os.environ.get("CI") == "true":
            pytest.fail(f"MySQL tests cannot run under CI: {how}")
        pytest.skip(how)
    try:
        yield url
    finally:
        if throwaway:
            throwaway.stop()


@pytest.fixture(scope="session")
def mysql_database_url(mysql_server_url: str) -> Iterator[str]:
    """A database of this run's own, dropped at the end."""
    name = f"skybridge_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(mysql_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield str(make_url(mysql_server_url).set(database=name).render_as_string(False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """Each database-backed test runs on SQLite and on MySQL/MariaDB, on empty tables."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'skybridge.sqlite3'}"
        return
    url = request.getfixturevalue("mysql_database_url")
    yield url
    drop_tables(url)


@pytest.fixture
def migrated_engine(database_url: str):
    """An engine on `database_url` (both backends) with every migration applied."""
    from runtime.db import create_db_engine, migrate
    from runtime.settings import Settings

    engine = create_db_engine(Settings(database_url=database_url))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def mysql_url(mysql_database_url: str) -> Iterator[str]:
    """MySQL/MariaDB only, on empty tables (for behaviour SQLite does not have)."""
    yield mysql_database_url
    drop_tables(mysql_database_url)


def drop_tables(url: str) -> None:
    """The tests share one MySQL database: each leaves it without tables."""
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in ("outbox", "submissions", "schema_migrations"):
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def pytest_terminal_summary(terminalreporter) -> None:
    if _mysql_unavailable:
        terminalreporter.write_line(
            f"!!! MySQL/MariaDB tests SKIPPED: {_mysql_unavailable[0]} "
            "(set MYSQL_TEST_URL=mysql+pymysql://user:pass@host:port/)",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def pubsub_host() -> Iterator[str]:
    """A Pub/Sub emulator for the real client: ours, unless PUBSUB_EMULATOR_HOST names one."""
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        yield os.environ["PUBSUB_EMULATOR_HOST"]
        return
    from local_stack.pubsub import PubSubEmulator

    emulator = PubSubEmulator()
    port = emulator.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def gcs_url(tmp_path_factory) -> Iterator[str]:
    """fake-gcs-server, for the real google-cloud-storage client."""
    from local_stack.storage import FakeGcs

    server = FakeGcs(tmp_path_factory.mktemp("gcs")).start()
    try:
        yield server.url
    finally:
        server.stop()
