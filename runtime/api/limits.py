"""The app's own abuse limit: submissions per client, answered 429 with Retry-After.

WAF (aws_stack/waf.py) limits requests per IP at the edge over 5 minutes; this limit is
finer and works wherever the app runs (the local stack, behind any proxy): a token bucket
per client in each worker process, `SKYBRIDGE_SUBMISSIONS_PER_MINUTE` (0, the default: off).
The client is the address the load balancer saw: the last X-Forwarded-For entry when
`SKYBRIDGE_TRUSTED_PROXY_HOPS` is 1 (the ALB appends it; entries before it are the client's
own words, and so is an X-Forwarded-For header of its own, which the WSGI server joins in
front of the ALB's), else the peer address; on EC2 the stack sets 1. Memory is bounded:
the least recently seen clients go.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from flask import Request


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None, clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst or max(1, per_minute // 6))
        self.clients = clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> float:
        """0 if `client` may go on; else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > self.clients:
                self._buckets.popitem(last=False)
        return wait


def client_address(request: Request, trusted_hops: int) -> str:
    if trusted_hops:
        forwarded = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [h for h in forwarded if h]
        if len(forwarded) >= trusted_hops:
            return forwarded[-trusted_hops]
    return request.remote_addr or "-"
