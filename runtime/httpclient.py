"""The one way the runtime makes an HTTP session."""

from __future__ import annotations

import requests


def session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no per-request proxy lookup: it costs more than the request
    return session
