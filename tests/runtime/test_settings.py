"""Settings come only from variables the runtime reads: a misspelt `SKYBRIDGE_*` name is an
error naming the closest one (it used to be ignored, leaving the setting at its default),
and nothing in the project sets a name the runtime does not read."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from local_stack.stack import LocalStack, Options
from runtime.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
KNOWN = {f"SKYBRIDGE_{name.upper()}" for name in Settings.model_fields}
NAME = re.compile(r"\bSKYBRIDGE_[A-Z0-9_]*[A-Z0-9]\b")
DELIBERATE = {"tests/test_misuse.py", "tests/runtime/test_settings.py"}  # misspelt on purpose


def test_a_misspelt_variable_names_the_closest_setting(monkeypatch):
    monkeypatch.setenv("SKYBRIDGE_INGEST_URI", "https://x/")
    expected = r"SKYBRIDGE_INGEST_URI .*did you mean SKYBRIDGE_INGEST_URL\?"
    with pytest.raises(SettingsError, match=expected):
        load_settings()


def test_an_unknown_variable_with_no_close_name_points_at_the_list(monkeypatch):
    monkeypatch.setenv("SKYBRIDGE_ZZZ", "1")
    expected = r"SKYBRIDGE_ZZZ is not a skybridge setting .*runtime/settings.py"
    with pytest.raises(SettingsError, match=expected):
        load_settings()


def test_log_levels_are_checked_and_any_case_is_accepted():
    assert load_settings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(SettingsError, match=r"SKYBRIDGE_LOG_LEVEL: 'LOUD' is not a log level"):
        load_settings(log_level="LOUD")


def test_every_skybridge_variable_named_in_the_project_is_a_setting():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found: dict[str, set[str]] = {}
    for path in tracked:
        if path in DELIBERATE or not (ROOT / path).is_file():
            continue
        try:
            text = (ROOT / path).read_text()
        except UnicodeDecodeError:
            continue
        # The error's own example (README) names a misspelt variable on purpose.
        text = re.sub(r"SKYBRIDGE_\w+ is not a skybridge setting", "", text)
        for name in NAME.findall(text):
            found.setdefault(name, set()).add(path)
    assert found, "the scan found no SKYBRIDGE_ names at all"
    unknown = {name: sorted(paths) for name, paths in found.items() if name not in KNOWN}
    assert not unknown, unknown


def test_the_local_stack_sets_only_settings_the_runtime_reads(tmp_path):
    stack = LocalStack(Options(workdir=tmp_path))
    for name in ("pubsub", "ingest", "store", "api", "relay", "probe"):
        variables = {key for key in stack._child(name).env if key.startswith("SKYBRIDGE_")}
        assert variables <= KNOWN, (name, variables - KNOWN)
