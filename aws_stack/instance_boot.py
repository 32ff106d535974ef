"""What an API instance runs at boot, as pure functions of typed settings: the user-data
script, a small shell library it shares with the relay's settings script, the systemd units,
the log rotation and the CloudWatch agent configuration.

Nothing here touches CDK: `ApiService` resolves the settings (asset URLs, parameter names,
the secret's ARN, the resource to signal; CloudFormation tokens while synthesizing) and
adds `boot_commands(...)` to the launch template's user data. The tests render these texts
directly, and run the synthesized user data the way cloud-init does.

cloud-init runs user data as root with an almost empty environment, so the boot sets its
own PATH and reads the region from IMDSv2; every network step is retried with backoff; any
failure is logged naming its step and sent to CloudFormation as a failure signal (EXIT
trap), and success is signalled only once the API answers /readyz on the instance.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime import commands

APP_PORT = 8000
LIVENESS_PATH = "/livez"  # the process answers: the load balancer's and the group's check
READINESS_PATH = "/readyz"  # and its database does: what the boot waits for
LOCAL_API = f"http://127.0.0.1:{APP_PORT}"
ROOT_DIR = "/opt/skybridge"
APP_DIR = f"{ROOT_DIR}/app"
VENV = f"{ROOT_DIR}/venv"
WHEELHOUSE = f"{ROOT_DIR}/wheelhouse"
PYTHON = f"{VENV}/bin/python"
LIB = f"{ROOT_DIR}/lib.sh"
RDS_CA = f"{ROOT_DIR}/rds-global-bundle.pem"
RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
IMDS = "http://169.254.169.254"
CONFIG_DIR = "/etc/skybridge"
LOG_DIR = "/var/log/skybridge"
RUNTIME_ENV = f"{CONFIG_DIR}/runtime.env"
GCP_ENV = f"{CONFIG_DIR}/gcp.env"
CREDENTIAL_CONFIG = f"{CONFIG_DIR}/gcp-credential-config.json"
FETCH_SCRIPT = f"{ROOT_DIR}/fetch-gcp-settings.sh"
AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/skybridge.json"
AGENT_CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
CFN_SIGNAL = "/opt/aws/bin/cfn-signal"
LOGROTATE_CONFIG = "/etc/logrotate.d/skybridge"
# The services' own system account: they need no privilege (port 8000, outbound calls,
# reading the app and its settings); only the relay's settings script, which writes under
# /etc/skybridge, runs as root (`+` in ExecStartPre, systemd.service(5)).
SERVICE_USER = "skybridge"
SERVICE_HOME = "/var/lib/skybridge"  # not created: the services keep no state
SERVICES = ("api", "relay")
API_WORKERS = 4  # 2 vCPUs (t4g.small)
PACKAGES = (
    "aws-cfn-bootstrap",  # cfn-signal: AL2023 does not ship it
    "python3.12",
    "python3.12-pip",
    "unzip",
    "logrotate",
    "amazon-cloudwatch-agent",
)
# Retries: 5 attempts, 2, 4, 8, 16 s apart (30 s at most per step); the API gets 90 checks
# 2 s apart to answer (migrations run before it listens).
RETRY_ATTEMPTS = 5
RETRY_FIRST_DELAY = 2
READY_CHECKS = 90


@dataclass(frozen=True)
class BootSettings:
    """Everything the boot needs to know about its stack, resolved by the construct.

    `ssm_settings` maps a runtime variable (`SKYBRIDGE_...`) to the SSM parameter the relay
    reads it from at every start: add one there and the fetch script, the check that it is
    not empty and the relay's environment follow. `environment` adds fixed settings to
    every unit's `runtime.env`.
    """

    stack_name: str
    signal_resource: str  # logical id of the Auto Scaling group (its CreationPolicy counts)
    signal_region: str  # the stack's region: where cfn-signal must reach CloudFormation
    artifact_url: str  # s3://bucket/key of the runtime zip
    database_secret_arn: str
    log_prefix: str  # CloudWatch log groups are <log_prefix>/<service>
    credential_config_parameter: str  # SSM parameter holding the external_account JSON
    ssm_settings: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    wheelhouse_url: str | None = None  # s3://bucket/key of the wheelhouse zip, when shipped


def runtime_environment(settings: BootSettings) -> dict[str, str]:
    """The units' fixed settings (`runtime.env`; the boot appends the region it reads)."""
    return {
        "SKYBRIDGE_DATABASE_URL": "mysql+pymysql://placeholder/skybridge",
        "SKYBRIDGE_DATABASE_SECRET_ARN": settings.database_secret_arn,
        "SKYBRIDGE_DATABASE_TLS_CA": RDS_CA,
        "SKYBRIDGE_TOKEN_SOURCE": "aws-wif",
        "SKYBRIDGE_GCP_CREDENTIAL_CONFIG": CREDENTIAL_CONFIG,
        "SKYBRIDGE_METRICS": "emf",
        **settings.environment,
    }


def shell_library() -> str:
    """`lib.sh`: the helpers the boot and the relay's settings script share."""
    return f"""\
# skybridge shell helpers (sourced by the boot and by fetch-gcp-settings.sh).
say() {{ echo "skybridge: $*" >&2; }}

# retry CMD...: {RETRY_ATTEMPTS} attempts, exponential backoff; names the command if it gives up.
retry() {{
  local attempt=1 delay={RETRY_FIRST_DELAY}
  until "$@"; do
    if [ "$attempt" -ge {RETRY_ATTEMPTS} ]; then
      say "gave up after $attempt attempts: $*"
      return 1
    fi
    say "attempt $attempt failed, retrying in ${{delay}}s: $*"
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
  done
}}

# imds PATH: one IMDSv2 read (session token first; the hop limit of 1 reaches the host).
imds() {{
  local token
  token=$(curl -fsS --max-time 2 -X PUT "{IMDS}/latest/api/token" \\
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300") || return 1
  curl -fsS --max-time 2 -H "X-aws-ec2-metadata-token: $token" "{IMDS}/latest/meta-data/$1"
}}

# region: this instance's region, from IMDSv2 (cloud-init's environment has none).
region() {{
  local value
  value=$(retry imds placement/region) || {{ say "cannot read the region from IMDSv2"; return 1; }}
  [ -n "$value" ] || {{ say "IMDSv2 answered an empty region"; return 1; }}
  printf '%s\\n' "$value"
}}

# ssm_value REGION NAME: a parameter's value; fails naming the parameter when unreadable or blank.
ssm_value() {{
  local value
  value=$(retry aws ssm get-parameter --region "$1" --name "$2" \\
    --query Parameter.Value --output text) || {{ say "cannot read SSM parameter $2"; return 1; }}
  if [ -z "${{value//[[:space:]]/}}" ] || [ "$value" = None ]; then
    say "SSM parameter $2 is empty"
    return 1
  fi
  printf '%s\\n' "$value"
}}

# with_runtime_env CMD...: CMD as the units run it (their environment and directory).
with_runtime_env() {{
  (set -a; . {RUNTIME_ENV}; set +a; export PYTHONPATH={APP_DIR}; cd {APP_DIR}; "$@")
}}
"""


def fetch_gcp_settings_script(settings: BootSettings) -> str:
    """The relay's GCP settings from SSM, read at every relay start (redeploys need no
    rebuild); written only when every one is there and not blank."""
    reads = [
        f'{name.lower()}=$(ssm_value "$region" {parameter})'
        for name, parameter in settings.ssm_settings.items()
    ]
    writes = [f'  echo "{name}=${name.lower()}"' for name in settings.ssm_settings]
    lines = [
        "#!/bin/bash",
        "# The relay's GCP settings from SSM (ExecStartPre of skybridge-relay, and the boot).",
        "set -euo pipefail",
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f". {LIB}",
        "region=$(region)",
        f'credential_config=$(ssm_value "$region" {settings.credential_config_parameter})',
        *reads,
        f'work=$(mktemp -d "{CONFIG_DIR}/.gcp.XXXXXX")',
        "trap 'rm -rf \"$work\"' EXIT",
        """printf '%s\\n' "$credential_config" > "$work/credential-config.json\"""",
        "{",
        *writes,
        '} > "$work/gcp.env"',
        # Read by the relay, which runs as the service account; nothing in them is secret.
        f'chgrp {SERVICE_USER} "$work/credential-config.json" "$work/gcp.env"',
        'chmod 0640 "$work/credential-config.json" "$work/gcp.env"',
        f'mv "$work/credential-config.json" {CREDENTIAL_CONFIG}',
        f'mv "$work/gcp.env" {GCP_ENV}',
    ]
    return "\n".join(lines) + "\n"


def unit(name: str, exec_start: str, exec_start_pre: str, environment_files: list[str]) -> str:
    """A systemd service running one of the runtime's processes from the artifact, as the
    unprivileged service account, with the file system read-only to it (systemd.exec(5):
    ProtectSystem=strict leaves /dev, /proc and /sys; PrivateTmp gives it its own /tmp).
    Its log file is opened by systemd, not by the service."""
    lines = [
        "[Unit]",
        f"Description=skybridge {name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "[Service]",
        *[f"EnvironmentFile={path}" for path in environment_files],
        f"Environment=PYTHONPATH={APP_DIR}",
        f"WorkingDirectory={APP_DIR}",
        f"User={SERVICE_USER}",
        f"Group={SERVICE_USER}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
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
            "api",
            api.replace("%", "%%"),
            shlex.join(commands.migrate_argv(PYTHON)),
            [RUNTIME_ENV],
        ),
        "skybridge-relay": unit(
            "relay",
            shlex.join(commands.relay_argv(PYTHON)),
            f"+{FETCH_SCRIPT}",  # as root: it writes the settings under /etc/skybridge
            [RUNTIME_ENV, f"-{GCP_ENV}"],  # optional: the ExecStartPre writes it first
        ),
    }


def logrotate_config() -> str:
    """The services append to their log files (about 675 bytes per request): rotated by
    size, four kept, truncated in place (systemd holds the files open)."""
    return (
        f"{LOG_DIR}/*.log {{\n  size 100M\n  rotate 4\n  compress\n  delaycompress\n"
        "  copytruncate\n  missingok\n  notifempty\n}\n"
    )


# AL2023's logrotate runs daily; this timer checks the size every 15 minutes.
LOGROTATE_UNITS = {
    "skybridge-logrotate.service": (
        "[Unit]\nDescription=rotate skybridge logs\n[Service]\nType=oneshot\n"
        f"ExecStart=/usr/sbin/logrotate {LOGROTATE_CONFIG}\n"
    ),
    "skybridge-logrotate.timer": (
        "[Unit]\nDescription=rotate skybridge logs every 15 minutes\n[Timer]\n"
        "OnBootSec=15min\nOnUnitActiveSec=15min\n[Install]\nWantedBy=timers.target\n"
    ),
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


def _download(url: str, dest: str) -> str:
    return f'retry aws s3 cp --only-show-errors --region "$REGION" {url} {dest}'


def boot_commands(settings: BootSettings) -> list[str]:
    """The user data (after `#!/bin/bash`): install, configure, check, start, signal."""
    signal = (
        f"{CFN_SIGNAL} --stack {settings.stack_name} --resource {settings.signal_resource} "
        f"--region {settings.signal_region}"
    )
    environment = "\n".join(f"{k}={v}" for k, v in runtime_environment(settings).items())
    lines = [
        "set -euo pipefail",
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"mkdir -p {ROOT_DIR} {CONFIG_DIR} {LOG_DIR}",
        f"id -u {SERVICE_USER} >/dev/null 2>&1 || useradd --system --user-group "
        f"--no-create-home --home-dir {SERVICE_HOME} --shell /sbin/nologin {SERVICE_USER}",
        *heredoc(LIB, shell_library()),
        f". {LIB}",
        'STEP="starting"',
        'step() { STEP="$*"; say "boot: $STEP"; }',
        # Any failure: say which step, and tell CloudFormation (if cfn-signal is installed
        # yet; before that, the CreationPolicy's timeout is what notices).
        "on_exit() {",
        "  local code=$?",
        '  [ "$code" -eq 0 ] && return 0',
        '  say "boot FAILED (exit $code) while $STEP"',
        f"  if [ -x {CFN_SIGNAL} ]; then",
        f'    retry {signal} --exit-code 1 --reason "boot failed while $STEP" || true',
        "  fi",
        "}",
        "trap on_exit EXIT",
        'step "installing packages"',
        f"retry dnf install -y {' '.join(PACKAGES)}",
        'step "reading the region from IMDSv2"',
        "REGION=$(region)",
        'step "writing the configuration"',
        *heredoc(RUNTIME_ENV, environment),
        f'printf "AWS_REGION=%s\\nAWS_DEFAULT_REGION=%s\\n" "$REGION" "$REGION" >> {RUNTIME_ENV}',
        *heredoc(FETCH_SCRIPT, fetch_gcp_settings_script(settings)),
        f"chmod 0755 {FETCH_SCRIPT}",
        *heredoc(LOGROTATE_CONFIG, logrotate_config()),
        *heredoc(AGENT_CONFIG, json.dumps(agent_config(settings.log_prefix))),
    ]
    for name, text in {
        **{f"{n}.service": t for n, t in units().items()},
        **LOGROTATE_UNITS,
    }.items():
        lines += heredoc(f"/etc/systemd/system/{name}", text)
    # The settings first: a wrong one fails the boot in seconds, before anything installs.
    lines += [
        'step "reading the relay settings from SSM"',
        FETCH_SCRIPT,
        'step "reading the database secret"',
        f'retry aws secretsmanager get-secret-value --region "$REGION" '
        f"--secret-id {settings.database_secret_arn} --query SecretString --output text "
        "> /dev/null",
        'step "downloading the artifact"',
        _download(settings.artifact_url, f"{ROOT_DIR}/app.zip"),
        f"rm -rf {APP_DIR} && unzip -q {ROOT_DIR}/app.zip -d {APP_DIR}",
        # Compiled now, as root: the services cannot write __pycache__ (read-only to them).
        f"python3.12 -m compileall -q {APP_DIR}",
    ]
    index = ""
    if settings.wheelhouse_url is not None:
        lines += [
            'step "downloading the wheelhouse"',
            _download(settings.wheelhouse_url, f"{ROOT_DIR}/wheelhouse.zip"),
            f"rm -rf {WHEELHOUSE} && unzip -q {ROOT_DIR}/wheelhouse.zip -d {WHEELHOUSE}",
        ]
        index = f"--no-index --find-links {WHEELHOUSE}/wheels "
    lines += [
        'step "installing the runtime"',
        f"rm -rf {VENV} && python3.12 -m venv {VENV}",
        f"retry {VENV}/bin/pip install --quiet --disable-pip-version-check {index}"
        f"-r {APP_DIR}/requirements.txt",
        'step "downloading the RDS certificate bundle"',
        f"retry curl -fsSL --max-time 30 {RDS_CA_URL} -o {RDS_CA}",
        'step "migrating the database"',
        f"retry with_runtime_env {shlex.join(commands.migrate_argv(PYTHON))}",
        'step "starting the services"',
        f"{AGENT_CTL} -a fetch-config -m ec2 -s -c file:{AGENT_CONFIG}",
        "systemctl daemon-reload",
        "systemctl enable --now skybridge-logrotate.timer " + " ".join(units()),
        f'step "waiting for the API to answer {READINESS_PATH}"',
        "ready=0",
        f"for _ in {{1..{READY_CHECKS}}}; do",
        f"  if curl -fsS --max-time 2 -o /dev/null {LOCAL_API}{READINESS_PATH}; then",
        "    ready=1; break",
        "  fi",
        "  sleep 2",
        "done",
        f'[ "$ready" -eq 1 ] || {{ say "the API did not answer {READINESS_PATH}; see '
        f'{LOG_DIR}/api.log"; tail -n 20 {LOG_DIR}/api.log >&2 || true; exit 1; }}',
        'step "signalling success"',
        f'retry {signal} --exit-code 0 --reason "API ready"',
        'say "boot: done"',
    ]
    return lines
