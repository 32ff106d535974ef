"""Preflight against moto's AWS and a real ADC file: each failure says how to fix it."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
from moto import mock_aws

import environments
from deployment import preflight

MOTO_ACCOUNT = "123456789012"


@pytest.fixture
def env(tmp_path):
    text = (environments.DIRECTORY / "dev.toml").read_text()
    (tmp_path / "dev.toml").write_text(text.replace('"111111111111"', f'"{MOTO_ACCOUNT}"'))
    return environments.load("dev", tmp_path)


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@mock_aws
def test_unbootstrapped_account_names_the_bootstrap_command(env):
    findings = {f.check: f for f in preflight.check_aws(env)}
    assert findings["aws account"].ok
    assert not findings["cdk bootstrap"].ok
    assert f"cdk bootstrap aws://{MOTO_ACCOUNT}/eu-west-1" in findings["cdk bootstrap"].detail


@mock_aws
def test_bootstrapped_matching_account_passes(env):
    boto3.client("ssm", region_name="eu-west-1").put_parameter(
        Name=preflight.BOOTSTRAP_PARAMETER, Value="27", Type="String"
    )
    assert all(f.ok for f in preflight.check_aws(env))


@mock_aws
def test_wrong_account_is_named_with_the_file_key(tmp_path):
    shutil.copy(environments.DIRECTORY / "dev.toml", tmp_path / "dev.toml")
    findings = {f.check: f for f in preflight.check_aws(environments.load("dev", tmp_path))}
    assert not findings["aws account"].ok
    assert "aws.account = 111111111111" in findings["aws account"].detail


def test_missing_gcp_credentials_say_how_to_log_in(env, monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    (finding,) = preflight.check_gcp(env)
    assert not finding.ok
    assert "gcloud auth application-default login" in finding.detail


@pytest.mark.parametrize(("project", "ok"), [("skybridge-dev-000000", True), ("other-x1", False)])
def test_gcp_project_must_match_the_environment(env, monkeypatch, tmp_path, project, ok):
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "id",
                "client_secret": "secret",
                "refresh_token": "token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    findings = {f.check: f for f in preflight.check_gcp(env)}
    assert findings["gcp project"].ok is ok


def stubbed_rds(versions: list[str]):
    """describe-db-engine-versions answered as RDS does (moto does not implement it):
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBEngineVersions.html"""
    from botocore.stub import Stubber

    client = boto3.client("rds", region_name="eu-west-1")
    stubber = Stubber(client)
    stubber.add_response(
        "describe_db_engine_versions",
        {"DBEngineVersions": [{"Engine": "mysql", "EngineVersion": v} for v in versions]},
        {"Engine": "mysql"},
    )
    stubber.activate()
    return client


def test_an_offered_database_version_passes(env):
    from deployment.database_version import newest_mysql_84

    client = stubbed_rds(["8.0.40", "8.4.6", newest_mysql_84()])
    finding = preflight.check_database_version(env, client)
    assert finding.ok, finding.detail


def test_a_retired_database_version_names_the_key_and_what_is_offered(env):
    pinned = env.model_copy(
        update={"aws": env.aws.model_copy(update={"db_engine_version": "8.4.3"})}
    )
    client = stubbed_rds(["8.0.40", "8.4.9", "8.4.11", "8.4.12"])
    finding = preflight.check_database_version(pinned, client)
    assert not finding.ok
    assert "RDS no longer creates MySQL 8.4.3 in eu-west-1" in finding.detail
    assert "aws.db_engine_version in environments/dev.toml" in finding.detail
    assert "8.4.9, 8.4.11, 8.4.12" in finding.detail
