"""The circuit breaker: stops hammering `ingest` while it keeps failing."""

from __future__ import annotations

import logging

log = logging.getLogger("skybridge.relay")


class CircuitBreaker:
    """Opens after `threshold` failed batches in a row; lets one batch probe per cooldown."""

    def __init__(self, threshold: int, cooldown: float, max_cooldown: float = 300.0) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.failures = 0
        self.cooldown = cooldown
        self.open_until = 0.0

    def wait_time(self, now: float) -> float:
        return max(0.0, self.open_until - now)

    def record(self, success: bool, now: float) -> None:
        if success:
            if self.failures >= self.threshold:
                log.info("circuit closed", extra={"event": "relay.circuit_closed"})
            self.failures = 0
            self.cooldown = self.base_cooldown
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown
            log.warning(
                "circuit open for %.1fs after %d failed batches",
                self.cooldown,
                self.failures,
                extra={"event": "relay.circuit_open"},
            )
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
