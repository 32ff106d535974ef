"""One synth per environment per session, with cdk.json's context loaded by hand (an
in-process App ignores cdk.json) and cdk-nag's AwsSolutions checks attached."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from aws_stack.app import build
from environments import outputs as handover

ROOT = Path(__file__).resolve().parents[2]


def synth(
    env: str, tmp_path: Path, gcp_outputs: str | None = None, wheelhouse: str | None = None
) -> tuple[Template, dict]:
    context = json.loads((ROOT / "cdk.json").read_text())["context"] | {"env": env}
    if gcp_outputs:
        context["gcp_outputs"] = gcp_outputs
    if wheelhouse:
        context["wheelhouse"] = wheelhouse
    app = cdk.App(context=context, outdir=str(tmp_path))
    stack = build(app, quiet=True)
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    template_path = Path(assembly.directory) / stack.template_file
    return Template.from_stack(stack), json.loads(template_path.read_text()) | {
        "_path": str(template_path)
    }


@pytest.fixture(scope="session")
def dev(tmp_path_factory) -> tuple[Template, dict]:
    return synth("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory) -> tuple[Template, dict]:
    outputs = tmp_path_factory.mktemp("gcp") / "prod.json"
    handover.write_gcp(
        handover.GcpOutputs(
            project="skybridge-prod-000000",
            region="europe-west1",
            ingest_url="https://ingest-abc-ew.a.run.app/",
            credential_config={"type": "external_account", "audience": "//iam/x"},
            service_account="relay@skybridge-prod-000000.iam.gserviceaccount.com",
            bucket="b",
            topic="t",
            dead_letter_topic="d",
            receipts_topic="projects/skybridge-prod-000000/topics/skybridge-prod-receipts",
            receipts_subscription=(
                "projects/skybridge-prod-000000/subscriptions/skybridge-prod-receipts-relay"
            ),
        ),
        outputs,
    )
    return synth("prod", tmp_path_factory.mktemp("cdk-prod"), gcp_outputs=str(outputs))


@pytest.fixture
def dev_template(dev) -> Template:
    return dev[0]


@pytest.fixture
def prod_template(prod) -> Template:
    return prod[0]
