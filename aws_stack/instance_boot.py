"""What an API instance runs at boot, as pure functions of typed settings: the user-data
commands, the script that reads the GCP target from SSM, the two systemd units and the
CloudWatch agent configuration.

Nothing here touches CDK: `ApiService` resolves the settings (bucket keys, parameter names,
the secret's ARN; CloudFormation tokens while synthesizing) and adds `boot_commands(...)` to
the launch template's user data, and the tests render and run these texts directly.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime import commands

APP_PORT = 8000
ROOT_DIR = "/opt/skybridge"
APP_DIR = f"{ROOT_DIR}/app"
VENV = f"{ROOT_DIR}/venv"
WHEELHOUSE = f"{ROOT_DIR}/wheelhouse"
PYTHON = f"{VENV}/bin/python"
RDS_CA = f"{ROOT_DIR}/rds-global-bundle.pem"
RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
CONFIG_DIR = "/etc/skybridge"
LOG_DIR = "/var/log/skybridge"
RUNTIME_ENV = f"{CONFIG_DIR}/runtime.env"
GCP_ENV = f"{CONFIG_DIR}/gcp.env"
CREDENTIAL_CONFIG = f"{CONFIG_DIR}/gcp-credential-config.json"
FETCH_SCRIPT = f"{ROOT_DIR}/fetch-gcp-settings.sh"
AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/skybridge.json"
AGENT_CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
SERVICES = ("api", "relay")
API_WORKERS = 4  # 2 vCPUs (t4g.small)


@dataclass(frozen=True)
class BootSettings:
    """Everything the boot needs to know about its stack, resolved by the construct.

    `ssm_settings` maps a runtime variable (`SKYBRIDGE_...`) to the SSM parameter it is read
    from at every relay start; add a setting there and the fetch script, the check that it
    is not empty and the unit's environment follow.
    """

    region: str
    artifact_zip: str  # local path the artifact was downloaded to
    database_secret_arn: str
    log_prefix: str  # CloudWatch log groups are <log_prefix>/<service>
    credential_config_parameter: str  # SSM parameter holding the external_account JSON
    ssm_settings: Mapping[str, str] = field(default_factory=dict)
    wheelhouse_zip: str | None = None  # local path of the wheelhouse, when one is shipped


def runtime_environment(settings: BootSettings) -> dict[str, str]:
    """The units' fixed settings (`/etc/skybridge/runtime.env`)."""
    return {
        "SKYBRIDGE_DATABASE_URL": "mysql+pymysql://placeholder/skybridge",
        "SKYBRIDGE_DATABASE_SECRET_ARN": settings.database_secret_arn,
        "SKYBRIDGE_DATABASE_TLS_CA": RDS_CA,
        "SKYBRIDGE_TOKEN_SOURCE": "aws-wif",
        "SKYBRIDGE_GCP_CREDENTIAL_CONFIG": CREDENTIAL_CONFIG,
        "SKYBRIDGE_METRICS": "emf",
        "AWS_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
    }


def fetch_gcp_settings_script(settings: BootSettings) -> str:
    """Reads the GCP target from SSM at every relay start (redeploys need no rebuild)."""
    lines = [
        "#!/bin/bash",
        "# Reads the GCP target from SSM at every service start (redeploys need no rebuild).",
        "set -euo pipefail",
        'get() { aws ssm get-parameter --region "$AWS_REGION" --name "$1" '
        "--query Parameter.Value --output text; }",
        f"get {settings.credential_config_parameter} > {CREDENTIAL_CONFIG}",
        "{",
        *[
            f'  echo "{name}=$(get {parameter})"'
            for name, parameter in settings.ssm_settings.items()
        ],
        f"}} > {GCP_ENV}",
    ]
    return "\n".join(lines) + "\n"


def unit(name: str, exec_start: str, exec_start_pre: str) -> str:
    """A systemd service running one of the runtime's processes from the artifact."""
    lines = [
        "[Unit]",
        f"Description=skybridge {name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "[Service]",
        f"EnvironmentFile={RUNTIME_ENV}",
        f"EnvironmentFile=-{GCP_ENV}",
        f"Environment=PYTHONPATH={APP_DIR}",
        f"WorkingDirectory={APP_DIR}",
        f"ExecStartPre={exec_start_pre}",
        f"ExecStart={exec_start}",
        "Restart=always",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=40",
        f"StandardOutput=append:{LOG_DIR}/{name}.log",
        f"StandardError=append:{LOG_DIR}/{name}.log",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def units() -> dict[str, str]:
    """`skybridge-<service>.service` -> unit text. `%` is systemd's specifier character."""
    api = shlex.join(commands.api_argv(f"0.0.0.0:{APP_PORT}", workers=API_WORKERS, python=PYTHON))
    return {
        "skybridge-api": unit(
            "api", api.replace("%", "%%"), shlex.join(commands.migrate_argv(PYTHON))
        ),
        "skybridge-relay": unit("relay", shlex.join(commands.relay_argv(PYTHON)), FETCH_SCRIPT),
    }


def agent_config(log_prefix: str) -> dict:
    """The CloudWatch agent ships each service's log file (EMF metric lines included)."""
    return {
        "logs": {
            "logs_collected": {
                "files": {
                    "collect_list": [
                        {
                            "file_path": f"{LOG_DIR}/{name}.log",
                            "log_group_name": f"{log_prefix}/{name}",
                            "log_stream_name": "{instance_id}",
                        }
                        for name in SERVICES
                    ]
                }
            }
        }
    }


def heredoc(path: str, text: str) -> list[str]:
    """Commands writing `text` to `path` verbatim (quoted delimiter: no expansion)."""
    return [f"cat > {path} <<'EOF'", *text.rstrip("\n").split("\n"), "EOF"]


def boot_commands(settings: BootSettings) -> list[str]:
    """User data after the assets are downloaded: install, configure, start both units."""
    unpack_wheels, index = [], ""
    if settings.wheelhouse_zip is not None:
        unpack_wheels = [
            f"rm -rf {WHEELHOUSE} && unzip -q {settings.wheelhouse_zip} -d {WHEELHOUSE}"
        ]
        index = f"--no-index --find-links {WHEELHOUSE}/wheels "
    environment = "\n".join(f"{k}={v}" for k, v in runtime_environment(settings).items())
    lines = [
        "set -euxo pipefail",
        "dnf install -y python3.12 python3.12-pip unzip amazon-cloudwatch-agent",
        f"mkdir -p {CONFIG_DIR} {LOG_DIR}",
        f"rm -rf {APP_DIR} && unzip -q {settings.artifact_zip} -d {APP_DIR}",
        *unpack_wheels,
        f"python3.12 -m venv {VENV}",
        f"{VENV}/bin/pip install --quiet {index}-r {APP_DIR}/requirements.txt",
        f"curl -fsSL {RDS_CA_URL} -o {RDS_CA}",
        *heredoc(RUNTIME_ENV, environment),
        *heredoc(FETCH_SCRIPT, fetch_gcp_settings_script(settings)),
        f"chmod 0755 {FETCH_SCRIPT}",
        *heredoc(AGENT_CONFIG, json.dumps(agent_config(settings.log_prefix))),
        f"{AGENT_CTL} -a fetch-config -m ec2 -s -c file:{AGENT_CONFIG}",
    ]
    for name, text in units().items():
        lines += heredoc(f"/etc/systemd/system/{name}.service", text)
    lines += [
        FETCH_SCRIPT,
        "systemctl daemon-reload",
        "systemctl enable --now " + " ".join(units()),
    ]
    return lines
