"""checkov's CloudFormation checks over both synthesized templates: none fails, and every
check a resource skips carries its reason (aws_stack/acknowledgements.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOV = Path(sys.executable).with_name("checkov")


def checkov(template: Path) -> dict:
    # --skip-download: no call to Prisma Cloud for guidelines; the proxy variables send
    # anything else it might try to a closed loopback port, never off the machine.
    env = os.environ | {
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_EXPERIMENTAL_IMAGE_REFERENCING": "False",
    }
    done = subprocess.run(
        [str(CHECKOV), "--file", str(template), "--framework", "cloudformation",
         "--skip-download", "--compact", "--output", "json"],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_checkov_finds_nothing_unexplained(stack, request):
    template = Path(request.getfixturevalue(stack)[1]["_path"])
    report = checkov(template)
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["passed"] > 100
    for check in report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} has no reason"
