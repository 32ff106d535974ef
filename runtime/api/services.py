"""What the app's views share (settings, engine, metrics), kept in one typed place."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine

from runtime.api.limits import RateLimiter
from runtime.observability import Metrics
from runtime.settings import Settings

_KEY = "skybridge"


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    metrics: Metrics
    limiter: RateLimiter | None = None


def install(app: Flask, services: Services) -> None:
    app.extensions[_KEY] = services


def services(app: Flask | None = None) -> Services:
    """The services of `app` (default: the app handling the current request)."""
    found: Services = (app or current_app).extensions[_KEY]
    return found
