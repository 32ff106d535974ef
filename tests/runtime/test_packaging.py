"""The wheelhouse for the EC2 instances, downloaded for real from the package index."""

from __future__ import annotations

import pytest

from runtime.packaging import COMPLETE, WheelhouseError, build_wheelhouse, wheelhouse_path


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
