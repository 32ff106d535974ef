"""The AWS-side REST API: `gunicorn 'runtime.api:create_app()'`."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from runtime.api.limits import RateLimiter
from runtime.api.problems import Problem, not_migrated_problem
from runtime.api.services import Services, install
from runtime.db import create_db_engine, migrate, schema_missing
from runtime.ids import new_id
from runtime.observability import Metrics, configure_logging, request_id, submission_id
from runtime.settings import Settings, get_settings, load_settings

log = logging.getLogger("skybridge.api")
# A client's X-Request-Id is echoed and logged only in this shape (UUIDs, ULIDs, trace ids);
# anything else (quotes, backslashes, control characters, non-ASCII) is replaced by ours.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")

_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
}


def create_app(config: dict[str, Any] | Settings | None = None) -> Flask:
    """Build the app. `config` overrides settings (a Settings or a dict of its fields)."""
    if isinstance(config, Settings):
        settings = config
    elif config:
        settings = load_settings(**config)
    else:
        settings = get_settings()
    configure_logging(settings.log_level)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False
    engine = create_db_engine(settings)
    if settings.migrate_on_start:
        migrate(engine)
    metrics = Metrics(settings.metrics, settings.metrics_namespace, "api")
    limit = settings.submissions_per_minute
    limiter = RateLimiter(limit) if limit else None
    install(app, Services(settings, engine, metrics, limiter))

    from runtime.api import health, openapi, submissions

    app.register_blueprint(submissions.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(openapi.blueprint)
    _register_error_handlers(app, settings)
    _register_request_context(app)
    return app


def _register_request_context(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if SAFE_REQUEST_ID.fullmatch(incoming) else new_id()
        g.context_tokens = (request_id.set(g.request_id), submission_id.set(None))
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    @app.teardown_request
    def _reset(_error) -> None:
        tokens = g.pop("context_tokens", None)
        if tokens is not None:
            request_id.reset(tokens[0])
            submission_id.reset(tokens[1])


def _register_error_handlers(app: Flask, settings: Settings) -> None:
    def _not_migrated(error: Exception):
        log.error(
            "database not migrated: %s", error.__cause__ or getattr(error, "orig", error),
            extra={"event": "db.not_migrated"},
        )  # fmt: skip
        return not_migrated_problem(settings.retry_after_seconds).response(request.path)

    @app.errorhandler(Problem)
    def _problem(problem: Problem):
        return problem.response(request.path)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        status = error.code or 500
        detail = {
            404: f"no resource at {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the request body is larger than {settings.max_body_bytes} bytes",
        }.get(status, error.description or error.name)
        headers = dict(error.get_headers()) if status == 405 else {}
        headers.pop("Content-Type", None)
        return Problem(
            status, _HTTP_SLUGS.get(status, "http-error"), error.name, detail, headers=headers
        ).response(request.path)

    def _unavailable(error: Exception):
        if schema_missing(error):
            return _not_migrated(error)
        log.warning(
            "database unavailable: %s", type(error).__name__, extra={"event": "db.unavailable"}
        )
        return Problem(
            503,
            "database-unavailable",
            "Service Unavailable",
            "the database is unavailable; retry after the indicated delay",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        ).response(request.path)

    for unavailable in (OperationalError, InterfaceError, PoolTimeout):
        app.register_error_handler(unavailable, _unavailable)

    @app.errorhandler(ProgrammingError)  # MySQL's "table doesn't exist" is one
    def _programming(error: ProgrammingError):
        return _not_migrated(error) if schema_missing(error) else _unexpected(error)

    @app.errorhandler(SQLAlchemyError)
    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error", extra={"event": "api.unhandled"})
        return Problem(
            500, "internal", "Internal Server Error", "an unexpected error occurred"
        ).response(request.path)
