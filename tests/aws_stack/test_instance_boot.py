"""The instance's boot texts, rendered from typed settings and run, without a synth."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from aws_stack import instance_boot
from aws_stack.instance_boot import BootSettings
from tests.aws_stack.sandbox import Sandbox, available
from tests.fakes.aws_gcp_identity import FakeImds

SETTINGS = BootSettings(
    stack_name="skybridge-test",
    signal_resource="ApiInstancesASG0000",
    signal_region="eu-west-1",
    artifact_url="s3://assets/app.zip",
    wheelhouse_url="s3://assets/wheelhouse.zip",
    database_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
    log_prefix="/skybridge-test",
    credential_config_parameter="/skybridge-test/gcp-credential-config",
    ssm_settings={
        "SKYBRIDGE_INGEST_URL": "/skybridge-test/ingest-url",
        "SKYBRIDGE_GCP_SERVICE_ACCOUNT": "/skybridge-test/gcp-service-account",
    },
)


SERVICE_GID = 61999  # the service account's group in the fetch script's sandbox


def parse_unit(text: str) -> dict[str, list[str]]:
    """`[Section]` `Key=value` lines -> {"Section.Key": [values...]} (keys may repeat)."""
    section, parsed = "", {}
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line:
            key, value = line.split("=", 1)
            parsed.setdefault(f"{section}.{key}", []).append(value)
    return parsed


def test_the_api_unit_runs_gunicorn_on_the_app_port_after_migrating():
    unit = parse_unit(instance_boot.units()["skybridge-api"])
    (start,) = unit["Service.ExecStart"]
    argv = shlex.split(start.replace("%%", "%"))
    assert argv[:3] == [instance_boot.PYTHON, "-m", "gunicorn"]
    assert argv[argv.index("--bind") + 1] == f"0.0.0.0:{instance_boot.APP_PORT}"
    assert unit["Service.ExecStartPre"] == [f"{instance_boot.PYTHON} -m runtime.db migrate"]
    assert unit["Service.WorkingDirectory"] == [instance_boot.APP_DIR]


def test_percent_signs_are_escaped_for_systemd():
    start = parse_unit(instance_boot.units()["skybridge-api"])["Service.ExecStart"][0]
    # systemd reads a lone % as a specifier (%m is the machine id): every one is doubled.
    assert "%(" not in start.replace("%%", "")


def test_the_relay_unit_reads_the_gcp_settings_first():
    unit = parse_unit(instance_boot.units()["skybridge-relay"])
    # `+`: as root (it writes under /etc/skybridge), while the relay itself does not.
    assert unit["Service.ExecStartPre"] == [f"+{instance_boot.FETCH_SCRIPT}"]
    assert unit["Service.EnvironmentFile"] == [  # gcp.env: written by the ExecStartPre
        instance_boot.RUNTIME_ENV,
        f"-{instance_boot.GCP_ENV}",
    ]


@pytest.mark.parametrize("name", list(instance_boot.units()))
def test_each_service_runs_unprivileged_on_a_read_only_system(name):
    unit = parse_unit(instance_boot.units()[name])
    assert unit["Service.User"] == unit["Service.Group"] == [instance_boot.SERVICE_USER]
    assert unit["Service.NoNewPrivileges"] == ["yes"]
    assert unit["Service.ProtectSystem"] == ["strict"]
    assert unit["Service.PrivateTmp"] == ["yes"]
    # Only the relay's settings script is privileged; the service's own command never is.
    assert not unit["Service.ExecStart"][0].startswith(("+", "!"))


def test_the_agent_ships_the_log_file_each_unit_writes():
    agent = instance_boot.agent_config("/skybridge-test")
    shipped = {
        entry["file_path"]: entry["log_group_name"]
        for entry in agent["logs"]["logs_collected"]["files"]["collect_list"]
    }
    for name, text in instance_boot.units().items():
        short = name.removeprefix("skybridge-")
        (output,) = parse_unit(text)["Service.StandardOutput"]
        assert shipped[output.removeprefix("append:")] == f"/skybridge-test/{short}"


def test_the_boot_script_is_valid_bash_and_writes_what_the_units_read():
    script = "\n".join(instance_boot.boot_commands(SETTINGS))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    for path in (instance_boot.RUNTIME_ENV, instance_boot.FETCH_SCRIPT, instance_boot.AGENT_CONFIG):
        assert f"cat > {path} <<'EOF'" in script
    for name in instance_boot.units():
        assert f"/etc/systemd/system/{name}.service" in script
    assert f"--no-index --find-links {instance_boot.WHEELHOUSE}/wheels" in script


def test_without_a_wheelhouse_pip_uses_the_index():
    settings = BootSettings(**{**SETTINGS.__dict__, "wheelhouse_url": None})
    script = "\n".join(instance_boot.boot_commands(settings))
    assert "--no-index" not in script and "wheelhouse.zip" not in script


STUB_AWS = """#!/bin/bash
# Stand-in for `aws ssm get-parameter --name N --query Parameter.Value --output text`.
echo "$*" >> /var/lib/aws-calls
while [ $# -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done
case "$name" in
  */ingest-url) echo https://ingest.example/ ;;
  */gcp-service-account) echo relay@p.iam.gserviceaccount.com ;;
  */gcp-credential-config) echo '{"type": "external_account"}' ;;
  *) echo "ParameterNotFound: $name" >&2; exit 254 ;;
esac
"""


@pytest.fixture
def imds():
    server = FakeImds()
    server.start()
    yield server
    server.stop()


def fetch_sandbox(tmp_path, imds, aws: str) -> Sandbox:
    sandbox = Sandbox(tmp_path)
    sandbox.install("/usr/local/bin/aws", aws)
    sandbox.install(
        instance_boot.LIB, instance_boot.shell_library().replace(instance_boot.IMDS, imds.url)
    )
    sandbox.install(instance_boot.FETCH_SCRIPT, instance_boot.fetch_gcp_settings_script(SETTINGS))
    sandbox.install(f"{instance_boot.CONFIG_DIR}/.keep", "", mode=0o644)
    # The group the boot creates (useradd --user-group), for the files the relay reads.
    group = f"{instance_boot.SERVICE_USER}:x:{SERVICE_GID}:\n"
    sandbox.install("/etc/group", Path("/etc/group").read_text() + group, mode=0o644)
    return sandbox


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_the_fetch_script_writes_the_relay_settings_from_ssm(tmp_path, imds):
    sandbox = fetch_sandbox(tmp_path, imds, STUB_AWS)

    # As systemd runs an ExecStartPre, but with no environment at all: the region comes
    # from IMDSv2, not from AWS_REGION.
    done = sandbox.run(instance_boot.FETCH_SCRIPT, env={})

    assert done.returncode == 0, done.stderr
    assert "--region eu-west-1 " in "".join(
        sandbox.path("/var/lib/aws-calls").read_text().splitlines(keepends=True)
    )
    assert sandbox.path(instance_boot.GCP_ENV).read_text().splitlines() == [
        "SKYBRIDGE_INGEST_URL=https://ingest.example/",
        "SKYBRIDGE_GCP_SERVICE_ACCOUNT=relay@p.iam.gserviceaccount.com",
    ]
    config = json.loads(sandbox.path(instance_boot.CREDENTIAL_CONFIG).read_text())
    assert config == {"type": "external_account"}
    # Readable by the relay's group, not by everyone.
    for path in (instance_boot.GCP_ENV, instance_boot.CREDENTIAL_CONFIG):
        written = sandbox.path(path).stat()
        assert (written.st_gid, written.st_mode & 0o777) == (SERVICE_GID, 0o640), path


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_the_fetch_script_writes_nothing_when_a_setting_is_blank(tmp_path, imds):
    blank = STUB_AWS.replace("echo relay@p.iam.gserviceaccount.com", "echo '  '")
    sandbox = fetch_sandbox(tmp_path, imds, blank)

    done = sandbox.run(instance_boot.FETCH_SCRIPT, env={})

    assert done.returncode != 0
    assert "SSM parameter /skybridge-test/gcp-service-account is empty" in done.stderr
    assert not sandbox.path(instance_boot.GCP_ENV).exists()
    assert not sandbox.path(instance_boot.CREDENTIAL_CONFIG).exists()


def test_retry_backs_off_and_names_the_command_it_gave_up_on(tmp_path):
    script = (
        instance_boot.shell_library() + 'sleep() { echo "slept $1" >&2; }\nretry false --flag\n'
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert done.returncode == 1
    assert [line for line in done.stderr.splitlines() if line.startswith("slept")] == [
        "slept 2", "slept 4", "slept 8", "slept 16",
    ]  # fmt: skip
    assert "gave up after 5 attempts: false --flag" in done.stderr
