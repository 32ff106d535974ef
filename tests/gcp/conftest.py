from __future__ import annotations

import pytest

import environments
from gcp_stack import stack
from gcp_stack.api import Api
from gcp_stack.engine import Engine
from gcp_stack.resources import Context
from local_stack.control_plane import ControlPlane
from runtime.packaging import ROOT, build_artifact


@pytest.fixture
def fake():
    with ControlPlane() as plane:
        yield plane


@pytest.fixture(scope="session")
def artifact():
    return build_artifact(ROOT / "build" / "artifacts")


@pytest.fixture
def make_engine(fake, artifact):
    """An engine on the fake with a short retry deadline, so injected outages end quickly."""

    def make(env: str = "dev", deadline: float = 1.0, parallelism: int = 8) -> Engine:
        environment = environments.load(env)
        api = Api(endpoint=fake.url, deadline=deadline, poll_initial=0.01)
        ctx = Context(
            api=api,
            project=environment.gcp.project,
            region=environment.gcp.region,
            artifact=artifact,
            project_number="424242424242",
            stack=environment.prefix,
        )
        return Engine(stack.build(environment), ctx, parallelism=parallelism)

    return make
