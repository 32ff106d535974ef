"""The contracts between the parts: wire format, artifact, settings, environment files, logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import environments
from runtime.envelope import SCHEMAS, write_schemas
from runtime.ids import id_time, new_id
from runtime.observability import JsonFormatter, Metrics, request_id
from runtime.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_published_json_schemas_match_the_models(tmp_path):
    written = {path.name: path.read_text() for path in write_schemas(tmp_path)}
    committed = {path.name: path.read_text() for path in (ROOT / "schemas").glob("*.json")}
    assert written == committed, "run `python -m runtime.envelope schemas` and commit the result"
    assert len(written) == len(SCHEMAS)


def test_ids_sort_by_time():
    earlier, later = new_id(), new_id()
    assert len(earlier) == 26
    assert id_time(earlier) <= id_time(later)


def test_missing_required_setting_names_the_variable():
    with pytest.raises(SettingsError, match="SKYBRIDGE_INGEST_URL"):
        Settings().require("ingest_url")


def test_invalid_setting_names_the_variable(monkeypatch):
    from runtime.settings import get_settings

    monkeypatch.setenv("SKYBRIDGE_RELAY_BATCH_SIZE", "lots")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="SKYBRIDGE_RELAY_BATCH_SIZE"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_environment_files_load():
    for name in environments.available():
        assert environments.load(name).name == name


def test_bad_environment_value_names_the_key(tmp_path):
    text = (environments.DIRECTORY / "dev.toml").read_text().replace('"111111111111"', '"12"')
    (tmp_path / "dev.toml").write_text(text)
    with pytest.raises(environments.EnvironmentFileError, match=r"aws\.account"):
        environments.load("dev", tmp_path)


def test_an_environment_without_a_nat_gateway_is_refused_with_the_reason(tmp_path):
    text = (
        (environments.DIRECTORY / "dev.toml")
        .read_text()
        .replace("nat_gateways = 1", "nat_gateways = 0")
    )
    (tmp_path / "dev.toml").write_text(text)
    with pytest.raises(environments.EnvironmentFileError, match=r"aws\.nat_gateways.*Google"):
        environments.load("dev", tmp_path)


def test_the_old_object_retention_key_says_where_it_went(tmp_path):
    text = (
        (environments.DIRECTORY / "dev.toml")
        .read_text()
        .replace(
            "max_delivery_attempts = 5", "max_delivery_attempts = 5\nobject_retention_days = 30"
        )
    )
    (tmp_path / "dev.toml").write_text(text)
    with pytest.raises(environments.EnvironmentFileError, match=r"\[retention\] stored_days"):
        environments.load("dev", tmp_path)


def test_the_push_retry_budget_follows_the_store_triggers_retry_policy():
    from types import SimpleNamespace

    from gcp_stack.resources.trigger_dead_letter import TriggerDeadLetterPolicy

    policy = TriggerDeadLetterPolicy("trigger_dead_letter_policy/x")
    retry = policy.body(SimpleNamespace(project="p"))["retryPolicy"]
    assert retry == {
        "minimumBackoff": f"{environments.PUSH_MIN_BACKOFF_SECONDS}s",
        "maximumBackoff": f"{environments.PUSH_MAX_BACKOFF_SECONDS}s",
    }
    # The figures measured for the issue: about 2.5 minutes in dev, about 40 in prod.
    assert environments.push_retry_budget_seconds(5) == 150
    assert environments.push_retry_budget_seconds(10) == 2430
    assert environments.load("dev").confirm_window_seconds == 300
    assert environments.load("prod").confirm_window_seconds == 4860


def test_a_confirm_window_inside_the_push_retry_budget_is_refused(tmp_path):
    text = (
        (environments.DIRECTORY / "dev.toml")
        .read_text()
        .replace("confirm_window_seconds = 0", "confirm_window_seconds = 100")
    )
    (tmp_path / "dev.toml").write_text(text)
    with pytest.raises(environments.EnvironmentFileError, match=r"confirm_window_seconds.*150 s"):
        environments.load("dev", tmp_path)


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(environments.EnvironmentFileError, match="dev, prod"):
        environments.load("nope")


def test_log_lines_are_json_with_severity_and_request_id():
    record = logging.makeLogRecord(
        {"name": "t", "levelname": "WARNING", "msg": "hello %s", "args": ("x",), "event": "e.v"}
    )
    token = request_id.set("req-1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["severity"] == "WARNING"
    assert line["message"] == "hello x"
    assert line["request_id"] == "req-1"
    assert line["event"] == "e.v"


def test_emf_line_declares_its_metrics(capsys):
    Metrics("emf", "Skybridge", "relay").emit({"Forwarded": (3, "Count")})
    document = json.loads(capsys.readouterr().out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Skybridge"
    assert directive["Dimensions"] == [["Service"]]
    assert directive["Metrics"] == [{"Name": "Forwarded", "Unit": "Count"}]
    assert document["Service"] == "relay"
    assert document["Forwarded"] == 3


def test_runtime_imports_none_of_the_other_packages():
    """runtime/ is what runs in the clouds: it ships alone in the artifact, so an import of a
    stack, the local stack or the build tooling would fail there."""
    import ast

    others = {"aws_stack", "gcp_stack", "local_stack", "deployment", "smoke", "bench", "tests"}
    found = []
    for path in (ROOT / "runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in others]
    assert not found, found
