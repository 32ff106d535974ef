"""Credentials from the RDS secret (moto's Secrets Manager, a real MariaDB user): after a
rotation, a connection refused with the cached password re-reads the secret at once."""

from __future__ import annotations

import json
import uuid

import boto3
import pymysql
import pytest
from moto import mock_aws
from sqlalchemy import text
from sqlalchemy.engine import make_url

from runtime.db import create_db_engine
from runtime.settings import Settings

pytestmark = pytest.mark.mysql


@pytest.fixture
def user(mysql_server_url):
    url = make_url(mysql_server_url)
    admin = pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
        autocommit=True,
    )  # fmt: skip
    name = f"rot_{uuid.uuid4().hex[:10]}"
    hosts = ("%", "localhost")  # an anonymous ''@localhost would shadow '%'

    def set_password(password: str) -> None:
        with admin.cursor() as cursor:
            for host in hosts:
                cursor.execute(f"ALTER USER '{name}'@'{host}' IDENTIFIED BY '{password}'")

    with admin.cursor() as cursor:
        for host in hosts:
            cursor.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY 'first'")
    yield {"host": url.host, "port": url.port or 3306, "username": name}, set_password
    with admin.cursor() as cursor:
        for host in hosts:
            cursor.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")
    admin.close()


@mock_aws
def test_a_rotated_password_is_picked_up_at_the_first_refusal(user, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    account, set_password = user
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(
        Name="db", SecretString=json.dumps(account | {"password": "first"})
    )["ARN"]
    engine = create_db_engine(
        Settings(database_url="mysql+pymysql://placeholder/", database_secret_arn=arn)
    )
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1

    # Rotation: the password changes in MySQL and in the secret, within the cache's TTL.
    set_password("second")
    secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps(account | {"password": "second"})
    )
    engine.dispose()  # the next connection is a new login

    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT CURRENT_USER()"))
            .scalar()
            .startswith(account["username"])
        )
    engine.dispose()
