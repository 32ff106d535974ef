"""Fixtures for gcp_stack: the fake control plane, engines on it, a deployed stack.

Deploying takes a few hundred requests, so one deploy per session is recorded
(`deployed_state`) and each test that needs a deployed stack gets a fresh fake loaded with
a copy of it (`deployed`). Tests of deploying itself start from an empty fake (`fake`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import environments
from deployment.packaging import ROOT, Artifact, build_artifact
from gcp_stack import stack
from gcp_stack.api import Api
from gcp_stack.engine import Engine
from gcp_stack.resources import Context
from local_stack.control_plane import ControlPlane

PROJECT_NUMBER = "424242424242"  # what the fake answers for every project

MakeEngine = Callable[..., Engine]


def engine_on(
    url: str, artifact: Artifact, env: str = "dev", api_url: str = "", **options: float
) -> Engine:
    """An engine on the fake; short deadlines so that injected outages end quickly."""
    environment = environments.load(env)
    api = Api(
        endpoint=url,
        deadline=options.get("deadline", 1.0),
        operation_deadline=options.get("operation_deadline", 5.0),
        propagation_deadline=options.get("propagation_deadline", 20.0),
        poll_initial=0.01,
    )
    ctx = Context(
        api=api,
        project=environment.gcp.project,
        region=environment.gcp.region,
        artifact=artifact,
        project_number=PROJECT_NUMBER,
        stack=environment.prefix,
    )
    return Engine(
        stack.build(environment, api_url=api_url, project_number=PROJECT_NUMBER),
        ctx,
        parallelism=int(options.get("parallelism", 8)),
    )


@pytest.fixture(scope="session")
def artifact() -> Artifact:
    return build_artifact(ROOT / "build" / "artifacts")


@pytest.fixture
def fake() -> Iterator[ControlPlane]:
    with ControlPlane() as plane:
        yield plane


@pytest.fixture(scope="session")
def deployed_state(artifact: Artifact) -> dict:
    """The fake's state after one deploy of the dev stack."""
    with ControlPlane() as plane:
        engine = engine_on(plane.url, artifact)
        engine.apply(engine.plan())
        return plane.state()


@pytest.fixture
def deployed(fake: ControlPlane, deployed_state: dict) -> ControlPlane:
    """A fresh fake holding the dev stack as deployed."""
    fake.load(deployed_state)
    return fake


@pytest.fixture
def make_engine(fake: ControlPlane, artifact: Artifact) -> MakeEngine:
    """`make_engine(env="dev", api_url="", deadline=1.0, operation_deadline=5.0, …)`."""
    return lambda env="dev", **options: engine_on(fake.url, artifact, env, **options)


@pytest.fixture
def cli(fake: ControlPlane, tmp_path: Path) -> Callable[..., int]:
    """gcp_stack's main() on dev, pointed at the fake, writing outputs under tmp_path."""
    from gcp_stack.__main__ import main

    common = ["--env", "dev", "--api-endpoint", fake.url, "--poll-interval", "0.01"]
    return lambda command, *extra: main([command, *common, "--outputs-dir", str(tmp_path), *extra])
