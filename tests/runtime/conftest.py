from __future__ import annotations

import pytest

from runtime.api import create_app
from runtime.api.services import services


@pytest.fixture
def app(database_url: str):
    app = create_app({"database_url": database_url, "migrate_on_start": True, "metrics": "none"})
    yield app
    services(app).engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def engine(app):
    return services(app).engine
