"""An API started on a database that was never migrated (or is a migration behind) says
so: 503 problem+json whose detail names the command that fixes it, on every path that
reads the database and on /readyz, instead of "unavailable" (or a 500 on MySQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from runtime.api import create_app
from runtime.api.services import services
from runtime.db import MIGRATIONS, migrate, schema_migrations

PHOTO = {"type": "photo.uploaded", "data": {"caption": "x"}}
REQUESTS = [
    ("post", "/v1/submissions"),
    ("get", "/v1/submissions/01JD0000000000000000000000"),
    ("get", "/readyz"),
]


@pytest.fixture
def unmigrated(database_url):
    app = create_app({"database_url": database_url, "metrics": "none"})
    yield app.test_client()
    services(app).engine.dispose()


def says_to_migrate(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["type"].endswith("/database-not-migrated")
    assert "python -m runtime.db migrate" in body["detail"]
    assert response.headers["Retry-After"]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_an_unmigrated_database_answers_503_saying_to_migrate(unmigrated, method, path):
    says_to_migrate(getattr(unmigrated, method)(path, json=PHOTO if method == "post" else None))


def test_readyz_says_to_migrate_when_a_migration_is_missing(database_url):
    app = create_app({"database_url": database_url, "metrics": "none"})
    engine = services(app).engine
    migrate(engine)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    latest = MIGRATIONS[-1][0]
    with engine.begin() as connection:  # as if the code were one release ahead of the schema
        connection.execute(delete(schema_migrations).where(schema_migrations.c.version == latest))
    says_to_migrate(client.get("/readyz"))
    engine.dispose()
