"""Building the CDK app: the one place that reads configuration.

`-c env=<name>` picks `environments/<name>.toml`; `-c gcp_outputs=<path>` the file
`python -m gcp_stack deploy` wrote (default `gcp-outputs/<env>.json`). Without that file
the app still synthesizes, with clearly marked placeholders, and says so in one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

import environments
from aws_stack.acknowledgements import acknowledge
from aws_stack.api_service import GcpTarget
from aws_stack.stack import SkybridgeStack
from deployment.packaging import (
    COMPLETE,
    ROOT,
    WheelhouseError,
    build_artifact,
    build_wheelhouse,
)
from environments import outputs as handover

PLACEHOLDER = "PLACEHOLDER-run-gcp_stack-deploy-first"


def gcp_target(path: Path) -> tuple[GcpTarget, bool]:
    """(the GCP half's outputs, whether they are real) from gcp_stack's outputs file."""
    outputs = handover.read_gcp(path)
    if outputs is None:
        placeholder = GcpTarget(
            ingest_url=f"https://{PLACEHOLDER}.invalid/",
            credential_config={"placeholder": PLACEHOLDER},
            service_account=f"{PLACEHOLDER}@invalid",
            receipts_subscription=f"projects/{PLACEHOLDER}/subscriptions/receipts",
        )
        return placeholder, False
    return (
        GcpTarget(
            ingest_url=outputs.ingest_url,
            credential_config=outputs.credential_config,
            service_account=outputs.service_account,
            receipts_subscription=outputs.receipts_subscription,
        ),
        True,
    )


def _wheelhouse(setting: object) -> Path | None:
    """`-c wheelhouse=true` (make deploy): the instances install from wheels shipped with the
    stack, not from PyPI at boot; downloaded once per set of requirements. A path instead of
    `true` names a wheelhouse built before. Off by default, so synth needs no network."""
    if setting in (None, False, "", "false"):
        return None
    if str(setting).lower() == "true":
        return build_wheelhouse()
    path = Path(str(setting))
    if not (path / COMPLETE).exists():
        raise WheelhouseError(
            f"-c wheelhouse={setting}: not a complete wheelhouse; build one with "
            "`python -m deployment.packaging wheelhouse` or pass -c wheelhouse=true"
        )
    return path


def build(app: cdk.App, *, quiet: bool = False) -> SkybridgeStack:
    env_name = app.node.try_get_context("env") or "dev"
    environment = environments.load(env_name)
    outputs_path = ROOT / (
        app.node.try_get_context("gcp_outputs") or f"gcp-outputs/{env_name}.json"
    )
    gcp, real = gcp_target(outputs_path)
    if not real and not quiet:
        inside = outputs_path.is_relative_to(ROOT)
        shown = outputs_path.relative_to(ROOT) if inside else outputs_path
        print(
            f"note: {shown} not found — GCP values are placeholders "
            "(run `python -m gcp_stack deploy` first to deploy for real)",
            file=sys.stderr,
        )
    artifact = build_artifact(ROOT / "build" / "artifacts")
    wheelhouse = _wheelhouse(app.node.try_get_context("wheelhouse"))
    stack = SkybridgeStack(
        app,
        environment.prefix,
        environment=environment,
        gcp=gcp,
        artifact=artifact.path,
        wheelhouse=wheelhouse,
        env=cdk.Environment(account=environment.aws.account, region=environment.aws.region),
        description=f"skybridge {environment.name}: API, outbox relay and database on AWS",
        tags={"project": "skybridge", "environment": environment.name},
    )
    acknowledge(stack, environment)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> int:
    app = cdk.App()
    try:
        build(app)
    except (environments.EnvironmentFileError, WheelhouseError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0
