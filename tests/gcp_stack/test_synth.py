"""A snapshot of the desired state per environment (the artifact's hash masked).

The AWS API's URL is given, so the uptime check is in the snapshot whatever
cdk-outputs/ holds on this machine.
"""

from __future__ import annotations

import json
import re

import pytest

from gcp_stack.__main__ import main


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_synth_snapshot(env, capsys, snapshot):
    assert main(["synth", "--env", env, "--api-url", "https://api.example.com"]) == 0
    text = re.sub(
        r'"source-sha": "[0-9a-f]{12}"', '"source-sha": "<hash>"', capsys.readouterr().out
    )
    assert json.loads(text) == snapshot
