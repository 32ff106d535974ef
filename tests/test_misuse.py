"""Every misuse outside gcp_stack ends in one sentence saying what is wrong and how to fix
it, with a non-zero exit and no traceback (issue 12; gcp_stack's own list is in
tests/gcp_stack/test_cli.py). Each case is the command a person would type, run as a
process of its own."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from environments import outputs as handover
from local_stack.ports import free_port
from runtime import commands

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    exit_code: int = 1
    words: tuple[str, ...] = ()  # each must be in the sentence ({port}, {tmp} filled in)
    # Send SIGINT (Ctrl-C) once the command is under way: "connected" when it has connected
    # to the held port, else when this path (filled in) exists.
    interrupt_when: str | None = None
    slow: bool = False


@pytest.fixture
def held_port() -> Iterator[tuple[int, socket.socket]]:
    """A port something listens on but never answers (accepts nothing, reads nothing)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1], sock
    finally:
        sock.close()


PY = sys.executable
MIGRATE = [PY, "-m", "runtime.db", "migrate"]
SQLITE = "sqlite:///{tmp}/db.sqlite3"
# Each case fills {port} with a closed port, {held} with a port that listens but never
# answers, {tmp} with the test's directory.
CASES: dict[str, Case] = {
    "misspelt SKYBRIDGE_ variable (migrate)": Case(
        MIGRATE,
        {"SKYBRIDGE_DATABASE_URL": SQLITE, "SKYBRIDGE_DATABSE_POOL_SIZE": "4"},
        exit_code=2,
        words=("SKYBRIDGE_DATABSE_POOL_SIZE", "did you mean SKYBRIDGE_DATABASE_POOL_SIZE"),
    ),
    "misspelt SKYBRIDGE_ variable (relay)": Case(
        [PY, "-m", "runtime.relay", "replay"],
        {"SKYBRIDGE_DATABASE_URL": SQLITE, "SKYBRIDGE_RELAY_BATCH": "10"},
        exit_code=2,
        words=("SKYBRIDGE_RELAY_BATCH", "did you mean SKYBRIDGE_RELAY_BATCH_SIZE"),
    ),
    "misspelt SKYBRIDGE_ variable (API under gunicorn)": Case(
        commands.api_argv("127.0.0.1:0", 1),
        {"SKYBRIDGE_DATABASE_URL": SQLITE, "SKYBRIDGE_LOG_LEVL": "DEBUG"},
        exit_code=3,  # gunicorn's "worker failed to boot"
        words=("SKYBRIDGE_LOG_LEVL", "did you mean SKYBRIDGE_LOG_LEVEL"),
    ),
    "SKYBRIDGE_LOG_LEVEL=LOUD": Case(
        MIGRATE,
        {"SKYBRIDGE_DATABASE_URL": SQLITE, "SKYBRIDGE_LOG_LEVEL": "LOUD"},
        exit_code=2,
        words=("SKYBRIDGE_LOG_LEVEL", "'LOUD' is not a log level", "DEBUG, INFO"),
    ),
    "migrate on an unreachable database": Case(
        MIGRATE,
        {"SKYBRIDGE_DATABASE_URL": "mysql+pymysql://root@127.0.0.1:{port}/skybridge"},
        words=("cannot connect to mysql+pymysql://root@127.0.0.1:{port}/skybridge", "runs"),
    ),
    "migrate on a database it cannot migrate": Case(
        MIGRATE,
        {"SKYBRIDGE_DATABASE_URL": "sqlite:///{tmp}/taken.sqlite3"},  # `submissions` is a view
        words=("cannot migrate", "Cannot add a column to a view", "table names"),
    ),
    "migrate on something that is not a database URL": Case(
        MIGRATE,
        {"SKYBRIDGE_DATABASE_URL": "postgres-ish://x"},
        exit_code=2,
        words=("is not a database URL", "mysql+pymysql://"),
    ),
    "relay replay on an unreachable database": Case(
        [PY, "-m", "runtime.relay", "replay"],
        {"SKYBRIDGE_DATABASE_URL": "mysql+pymysql://root@127.0.0.1:{port}/skybridge"},
        words=("cannot use mysql+pymysql://root@127.0.0.1:{port}/skybridge", "reachable"),
    ),
    "local_stack up on a database at a bad port": Case(
        [
            PY,
            "-m",
            "local_stack",
            "--workdir",
            "{tmp}/stack",
            "--db",
            "mysql://root@127.0.0.1:{port}/skybridge",
            "up",
            "--no-aws-alarms",
        ],
        words=("did not migrate", "cannot connect", "127.0.0.1:{port}", "Can't connect"),
        slow=True,
    ),
    "control plane on a port in use": Case(
        [PY, "-m", "local_stack.control_plane", "--port", "{held}"],
        words=("127.0.0.1:{held}", "in use", "--port"),
    ),
    "Pub/Sub emulator on a port in use": Case(
        [PY, "-m", "local_stack.pubsub", "--port", "{held}"],
        words=("127.0.0.1:{held}", "in use", "--port"),
    ),
    "smoke against an unreachable API": Case(
        [PY, "-m", "smoke", "--api-url", "http://127.0.0.1:{port}", "--bucket", "b"],
        words=("cannot reach the API at http://127.0.0.1:{port}/livez", "check the URL"),
    ),
    "smoke against an API that never answers": Case(
        [PY, "-m", "smoke", "--api-url", "http://127.0.0.1:{held}", "--bucket", "b"],
        words=("the API at http://127.0.0.1:{held}/livez did not answer within 5s",),
    ),
    "smoke --api-url notaurl": Case(
        [PY, "-m", "smoke", "--api-url", "notaurl", "--bucket", "b"],
        exit_code=2,
        words=("'notaurl' is not an http(s) URL", "https://api.example.com"),
    ),
    "smoke --storage-endpoint notaurl": Case(
        [PY, "-m", "smoke", "--api-url", "http://x", "--storage-endpoint", "x", "--bucket", "b"],
        exit_code=2,
        words=("'x' is not an http(s) URL",),
    ),
    "smoke --env with a malformed cdk-outputs file": Case(
        [PY, "-m", "smoke", "--env", "{env}"],
        words=("cdk-outputs/{env}.json is not readable JSON", "re-run `cdk deploy"),
    ),
    # cdk runs the app with its context in CDK_CONTEXT_JSON, as `cdk synth -c k=v` does.
    "cdk app with a gcp_outputs file that is not JSON": Case(
        [PY, "-m", "aws_stack"],
        {"CDK_CONTEXT_JSON": '{"gcp_outputs": "{tmp}/taken.sqlite3"}'},
        exit_code=2,
        words=("{tmp}/taken.sqlite3 is not readable JSON", "re-run `python -m gcp_stack deploy`"),
        slow=True,
    ),
    "cdk app with gcp_outputs outside the checkout and a wheelhouse that is not one": Case(
        [PY, "-m", "aws_stack"],
        {"CDK_CONTEXT_JSON": '{"gcp_outputs": "{tmp}/absent.json", "wheelhouse": "{tmp}"}'},
        exit_code=2,
        words=("-c wheelhouse={tmp}: not a complete wheelhouse", "wheelhouse=true"),
        slow=True,
    ),
    "Ctrl-C during smoke": Case(
        [PY, "-m", "smoke", "--api-url", "http://127.0.0.1:{held}", "--bucket", "b"],
        exit_code=130,
        words=("smoke: interrupted",),
        interrupt_when="connected",
    ),
    "Ctrl-C while local_stack starts": Case(
        [PY, "-m", "local_stack", "--workdir", "{tmp}/stack", "up", "--no-aws-alarms"],
        exit_code=130,
        words=("interrupted: stopped; nothing left running",),
        interrupt_when="{tmp}/stack/logs",
        slow=True,
    ),
}


def fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


@pytest.fixture
def outputs_file(tmp_path) -> Iterator[Callable[[], str]]:
    """An environment name whose cdk-outputs file is malformed (removed afterwards)."""
    made: list[Path] = []

    def make() -> str:
        env = f"misuse-{tmp_path.name[-12:].replace('_', '-')}"
        path = handover.aws_path(env)
        path.parent.mkdir(exist_ok=True)
        path.write_text('{"skybridge-dev": {"ApiUrl": ')  # cut short
        made.append(path)
        return env

    yield make
    for path in made:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if c.slow else n for n, c in CASES.items()],
)
def test_misuse_is_one_sentence_and_a_non_zero_exit(name, tmp_path, held_port, outputs_file):
    case = CASES[name]
    with sqlite3.connect(tmp_path / "taken.sqlite3") as taken:
        taken.execute("CREATE VIEW submissions AS SELECT 1 AS id")
    closed = free_port()  # nothing listens there
    values = {"port": str(closed), "held": str(held_port[0]), "tmp": str(tmp_path)}
    if "{env}" in " ".join(case.argv):
        values["env"] = outputs_file()
    argv = [fill(part, values) for part in case.argv]
    # Only what a shell would have: no SKYBRIDGE_ variables from the test run itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYBRIDGE_")}
    env |= {"COLUMNS": "300", "HOME": str(tmp_path)}
    env |= {k: fill(v, values) for k, v in case.env.items()}
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if case.interrupt_when == "connected":
        held_port[1].settimeout(30)
        connection = held_port[1].accept()[0]  # kept open: the command waits for an answer
        process.send_signal(signal.SIGINT)
    elif case.interrupt_when:
        started = Path(fill(case.interrupt_when, values))
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{name}: still running after 60 s: {process.communicate()}")
    finally:
        if case.interrupt_when == "connected":
            connection.close()
    output = stdout + stderr
    assert process.returncode == case.exit_code, output
    assert "Traceback" not in output
    # One sentence: the line that holds the first key word holds them all.
    words = [fill(word, values) for word in case.words]
    line = next((line for line in output.splitlines() if words[0] in line), None)
    assert line is not None, output
    for word in words[1:]:
        assert word in line, line
