"""The baselines the benchmarks compare with, served by the same gunicorn command line.

* `baseline_app()` — parses the JSON and answers 202, no database: the ceiling.
* `api_without_write_app()` — our API with the accept path's database write taken out:
  the most the accept benchmark could reach if the write cost nothing.
* `straightforward_app()` — the same two rows written the textbook way: Flask, SQLAlchemy
  Core on a pooled engine (8 connections, pre-ping), both INSERTs in `engine.begin()`, no
  validation beyond parsing the JSON. The issue's reference figure (0.37) describes it.
* `naive_app()`    — the design we did not build: forwards each submission synchronously
  to the ingest endpoint and answers only when that returns.
* `fake_ingest_app()` — an ingest endpoint that publishes nothing: answers every item
  "published", after the delay (seconds) written in the file `BENCH_INGEST_DELAY_FILE`
  (a cross-cloud round trip), read per request so a run can switch it between rounds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import requests
from flask import Flask, Response, request


def baseline_app() -> Flask:
    app = Flask(__name__)

    @app.post("/v1/submissions")
    def accept():
        json.loads(request.get_data())
        return Response('{"status":"accepted"}', status=202, mimetype="application/json")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def api_without_write_app() -> Flask:
    import runtime.submissions
    from runtime.api import create_app

    def write_nothing(engine, rows) -> None:
        """Everything of the accept path but the INSERTs and the COMMIT."""

    runtime.submissions.insert_rows = write_nothing
    return create_app()


def straightforward_app() -> Flask:
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, insert

    from runtime.db import migrate, outbox, submissions

    engine = create_engine(os.environ["SKYBRIDGE_DATABASE_URL"], pool_size=8, pool_pre_ping=True)
    migrate(engine)
    app = Flask(__name__)

    @app.post("/v1/submissions")
    def accept():
        payload = json.loads(request.get_data())
        now = datetime.now(UTC)
        sid = uuid.uuid4().hex[:26]
        with engine.begin() as connection:
            connection.execute(
                insert(submissions).values(
                    id=sid,
                    schema_version="1",
                    type=payload["type"],
                    body=json.dumps(payload),
                    sha256="",
                    status="accepted",
                    attempts=0,
                    received_at=now,
                    updated_at=now,
                )
            )
            connection.execute(
                insert(outbox).values(
                    submission_id=sid, created_at=now, available_at=now, attempts=0
                )
            )
        return Response(json.dumps({"id": sid}), status=202, mimetype="application/json")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def naive_app() -> Flask:
    app = Flask(__name__)
    session = requests.Session()
    session.trust_env = False
    target = os.environ["BENCH_INGEST_URL"]

    @app.post("/v1/submissions")
    def accept():
        item = json.loads(request.get_data())
        response = session.post(target, json={"schema_version": "1", "items": [item]}, timeout=30)
        if response.status_code != 200:
            return Response('{"title":"upstream failed"}', status=502)
        return Response('{"status":"accepted"}', status=202, mimetype="application/json")

    return app


def fake_ingest_app() -> Flask:
    app = Flask(__name__)
    delay_file = os.environ.get("BENCH_INGEST_DELAY_FILE")

    @app.post("/")
    def ingest():
        delay = float(Path(delay_file).read_text() or 0) if delay_file else 0.0
        if delay:
            time.sleep(delay)
        items = json.loads(request.get_data())["items"]
        results = [
            {"submission_id": item.get("submission_id"), "status": "published", "message_id": "1"}
            for item in items
        ]
        return Response(json.dumps({"results": results}), mimetype="application/json")

    return app
