"""Stand-ins for the parts of an EC2 instance that cannot run in a test sandbox: dnf, systemd,
cfn-signal, the CloudWatch agent's control script and `sleep`. Each records what it was
asked in /var/lib/standins/<name>.log inside the sandbox; everything else the boot calls
(bash, curl, unzip, python -m venv, pip, the AWS CLI) is real.

Sources for the behaviour each one keeps:
* systemd.exec(5), systemd.service(5): `EnvironmentFile=` (a leading `-` makes a missing
  file no error), `Environment=`, `WorkingDirectory=`, `User=`/`Group=` (the account must
  exist: a start fails otherwise); an Exec line's `-` prefix ignores its failure, `+` runs
  it with full privileges (as root, not as `User=`); `ExecStartPre=` runs to
  completion before `ExecStart=` and a non-zero exit fails the start, so `systemctl start`
  (and `enable --now`) exits non-zero ("Job for X.service failed"); `%%` is a literal `%`;
  `StandardOutput=append:PATH` appends. https://www.freedesktop.org/software/systemd/man/
* cfn-signal: `--exit-code`, `--reason`, `--stack`, `--resource`, `--region`.
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cfn-signal.html
* dnf on AL2023: the packages the boot asks for exist; installing `aws-cfn-bootstrap` is
  what puts /opt/aws/bin/cfn-signal there, `amazon-cloudwatch-agent` its control script.
"""

from __future__ import annotations

import sys

STATE = "/var/lib/standins"

_RECORD = f"""mkdir -p {STATE}
printf '%s\\n' "$*" >> {STATE}/$(basename "$0").log
"""

CFN_SIGNAL = f"""#!/bin/bash
# Stand-in for cfn-signal (aws-cfn-bootstrap): records its arguments.
{_RECORD}"""

AGENT_CTL = f"""#!/bin/bash
# Stand-in for amazon-cloudwatch-agent-ctl: records its arguments; the config must be JSON.
{_RECORD}args="$*"; config=${{args##*file:}}; config=${{config%% *}}
{sys.executable} -c 'import json,sys; json.load(open(sys.argv[1]))' "$config"
"""

DNF = f"""#!/bin/bash
# Stand-in for dnf: records the request; installs what the boot needs from these packages.
{_RECORD}for package in "$@"; do
  case "$package" in
    # AL2023's python3.12 is the distribution's /usr/bin one; here, this machine's.
    python3.12) python=/usr/bin/python3; [ -x $python ] || python={sys.base_prefix}/bin/python3
      ln -sf $python /usr/bin/python3.12 ;;
    aws-cfn-bootstrap) mkdir -p /opt/aws/bin && cp {STATE}/cfn-signal /opt/aws/bin/cfn-signal ;;
    amazon-cloudwatch-agent)
      mkdir -p /opt/aws/amazon-cloudwatch-agent/bin /opt/aws/amazon-cloudwatch-agent/etc
      cp {STATE}/amazon-cloudwatch-agent-ctl /opt/aws/amazon-cloudwatch-agent/bin/ ;;
  esac
done
"""

SLEEP = f"""#!/bin/bash
# Stand-in for sleep: records the delay asked for and waits at most 0.5 s, so the retry
# schedule can be asserted and the failure variants finish in seconds.
{_RECORD}exec /bin/sleep "$(python3 -c 'import sys; print(min(float(sys.argv[1]), 0.5))' "$1")"
"""

# The unit runner (systemctl): Python, run by the machine's interpreter inside the sandbox.
SYSTEMCTL = f"""#!{sys.executable}
'''Stand-in for systemctl: daemon-reload, enable [--now], start, is-active; runs a unit's
ExecStartPre (to completion) and ExecStart (detached) as systemd.exec(5) describes.'''
import grp, os, pwd, shlex, subprocess, sys
STATE = {STATE!r}
os.makedirs(STATE, exist_ok=True)
with open(f"{{STATE}}/systemctl.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")

def parse(name):
    entries = []
    section = ""
    with open(f"/etc/systemd/system/{{name}}") as unit:
        for line in unit.read().splitlines():
            if line.startswith("["):
                section = line.strip("[]")
            elif "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                entries.append((section, key, value))
    return entries

def environment(entries):
    env = {{}}
    for section, key, value in entries:
        if key == "EnvironmentFile":
            optional = value.startswith("-")
            path = value.lstrip("-")
            if not os.path.exists(path):
                if optional:
                    continue
                raise SystemExit(f"{{path}}: EnvironmentFile not found")
            for line in open(path).read().splitlines():
                if line.strip() and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    env[k] = v
        elif key == "Environment":
            k, v = value.split("=", 1)
            env[k] = v
    return env

def argv(command):
    return shlex.split(command.replace("%%", "%"))

def prefixes(command):  # an Exec line's prefixes (systemd.service(5): - + ! @ :), the rest
    rest = command.lstrip("-+!@:")
    return command[: len(command) - len(rest)], rest

def start(name):
    if not name.endswith((".service", ".timer")):
        name += ".service"
    if name.endswith(".timer"):
        return 0  # timers are recorded only
    entries = parse(name)
    value = lambda key: [v for s, k, v in entries if k == key]
    env = environment(entries)
    cwd = (value("WorkingDirectory") or ["/"])[0]
    user = (value("User") or ["root"])[0]
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        print(f"{{name}}: Failed to determine user credentials: No such process", file=sys.stderr)
        return 1
    group = grp.getgrnam(value("Group")[0]).gr_gid if value("Group") else account.pw_gid
    env.setdefault("HOME", account.pw_dir)
    env.setdefault("USER", user)
    out = (value("StandardOutput") or ["append:/dev/null"])[0].removeprefix("append:")
    def run(command, wait):
        flags, command = prefixes(command)
        uid, gid = (0, 0) if "+" in flags else (account.pw_uid, group)
        with open(out, "ab") as sink:  # opened by the service manager, as root
            process = subprocess.Popen(
                argv(command), env=env, cwd=cwd, stdout=sink, stderr=sink,
                stdin=subprocess.DEVNULL, user=uid, group=gid, extra_groups=[] if uid else None,
                start_new_session=True,
            )
        if wait:
            return process.wait()
        with open(f"{{STATE}}/{{name}}.pid", "w") as pid:
            pid.write(str(process.pid))
        return 0
    for command in value("ExecStartPre"):
        if run(command, wait=True) != 0 and "-" not in prefixes(command)[0]:
            print(f"Job for {{name}} failed because the control process exited with error code.",
                  file=sys.stderr)
            return 1
    for command in value("ExecStart"):
        run(command, wait=False)
    return 0

args = [a for a in sys.argv[1:] if not a.startswith("-")]
flags = [a for a in sys.argv[1:] if a.startswith("-")]
verb, names = args[0], args[1:]
if verb == "daemon-reload":
    sys.exit(0)
if verb == "enable" and "--now" not in flags:
    sys.exit(0)
if verb in ("enable", "start", "restart"):
    sys.exit(max([start(name) for name in names] or [0]))
if verb == "is-active":
    pids = [f"{{STATE}}/{{n if '.' in n else n + '.service'}}.pid" for n in names]
    sys.exit(0 if all(os.path.exists(p) for p in pids) else 3)
print(f"systemctl stand-in: {{verb}} is not supported", file=sys.stderr)
sys.exit(1)
"""


def install(sandbox) -> None:
    """Put the stand-ins where AL2023 has the real ones (cfn-signal and the agent's script
    only once dnf "installs" their packages)."""
    sandbox.install("/usr/bin/dnf", DNF)
    sandbox.install("/usr/bin/systemctl", SYSTEMCTL)
    sandbox.install("/usr/local/bin/sleep", SLEEP)
    sandbox.install(f"{STATE}/cfn-signal", CFN_SIGNAL)
    sandbox.install(f"{STATE}/amazon-cloudwatch-agent-ctl", AGENT_CTL)


def records(sandbox, name: str) -> list[str]:
    path = sandbox.path(f"{STATE}/{name}.log")
    return path.read_text().splitlines() if path.exists() else []
