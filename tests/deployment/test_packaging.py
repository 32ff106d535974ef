"""The runtime artifact both clouds run, and the wheelhouse for the EC2 instances
(downloaded for real from the package index)."""

from __future__ import annotations

import io
import zipfile

import pytest

from deployment import packaging
from deployment.packaging import COMPLETE, WheelhouseError, build_wheelhouse, wheelhouse_path


def test_the_wheelhouse_holds_arm64_python312_wheels_and_is_reused(tmp_path):
    requirements = ["markupsafe>=3.0,<4"]  # small, and compiled: a wheel per platform
    path = build_wheelhouse(tmp_path, requirements)
    wheels = [wheel.name for wheel in (path / "wheels").iterdir()]
    assert len(wheels) == 1 and "cp312" in wheels[0] and "aarch64" in wheels[0], wheels
    assert (path / "requirements.txt").read_text() == "markupsafe>=3.0,<4\n"
    assert (path / COMPLETE).exists()
    # Complete: reused as it is, nothing downloaded again.
    (path / "wheels" / wheels[0]).unlink()
    assert build_wheelhouse(tmp_path, requirements) == path
    assert list((path / "wheels").iterdir()) == []
    # Other requirements: another wheelhouse.
    assert wheelhouse_path(tmp_path, ["markupsafe>=3.0,<3.1"]) != path


def test_a_failed_download_says_what_pip_said_and_leaves_nothing(tmp_path):
    with pytest.raises(WheelhouseError, match="skybridge-no-such-package"):
        build_wheelhouse(tmp_path, ["skybridge-no-such-package==0.0.1"])
    assert list(tmp_path.iterdir()) == []


def test_artifact_is_deterministic_and_named_by_content(tmp_path):
    first = packaging.build_artifact(tmp_path / "a")
    second = packaging.build_artifact(tmp_path / "b")
    assert first.sha256 == second.sha256
    assert first.name == f"skybridge-runtime-{first.sha256[:12]}.zip"
    names = zipfile.ZipFile(io.BytesIO(first.path.read_bytes())).namelist()
    assert {
        "main.py",
        "requirements.txt",
        "runtime/api/__init__.py",
        "runtime/relay/__main__.py",
        "runtime/db/__main__.py",
    } <= set(names)
    assert not [name for name in names if "__pycache__" in name]
    # What runs in the clouds and nothing else: no build tooling, no stacks, no tests.
    outside = [n for n in names if n not in {"main.py", "requirements.txt"}]
    assert outside and all(name.startswith("runtime/") for name in outside), outside


def test_artifact_requirements_are_the_runtime_dependencies(tmp_path):
    archive = zipfile.ZipFile(packaging.build_artifact(tmp_path).path)
    requirements = archive.read("requirements.txt").decode().split()
    assert requirements == packaging.runtime_requirements()
    assert any(line.startswith("functions-framework") for line in requirements)
    assert not any(line.startswith("aws-cdk-lib") for line in requirements)
