"""Schema-driven fuzzing: schemathesis generates requests from /openapi.json (valid and
invalid ones) and checks every answer: no 5xx, and each response matches the document."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from runtime.api import create_app

_directory = Path(tempfile.mkdtemp(prefix="skybridge-fuzz-"))
app = create_app(
    {
        "database_url": f"sqlite:///{_directory / 'fuzz.sqlite3'}",
        "migrate_on_start": True,
        "metrics": "none",
        "log_level": "WARNING",
    }
)
schema = schemathesis.openapi.from_wsgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    case.call_and_validate()
