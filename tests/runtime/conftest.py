from __future__ import annotations

import pytest

from runtime.api import create_app


@pytest.fixture
def app(database_url: str):
    app = create_app({"database_url": database_url, "migrate_on_start": True, "metrics": "none"})
    yield app
    app.extensions["skybridge"]["engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def engine(app):
    return app.extensions["skybridge"]["engine"]
