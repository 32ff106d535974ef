"""The relay's loop: claim a batch, post it to `ingest`, settle each row by the answer."""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta
from typing import Any

import requests
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from runtime import outbox, receipts
from runtime.db import utcnow
from runtime.observability import Metrics
from runtime.relay.breaker import CircuitBreaker
from runtime.relay.ingest_client import IngestClient, Outcome
from runtime.settings import Settings
from runtime.token_sources import TokenSource

log = logging.getLogger("skybridge.relay")


class Relay:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        token_source: TokenSource,
        *,
        session: requests.Session | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        settings.require("ingest_url")
        self.engine = engine
        self.settings = settings
        self.ingest = IngestClient(
            settings.ingest_url,
            token_source,
            timeout=settings.relay_timeout_seconds,
            source=settings.source,
            session=session,
        )
        self.metrics = metrics or Metrics("none", "", "relay")
        self.breaker = CircuitBreaker(
            settings.relay_breaker_threshold,
            settings.relay_breaker_cooldown,
            max_cooldown=settings.relay_backoff_max,
        )
        self.stopping = threading.Event()
        self._last_gauges = 0.0
        self._last_reconcile = 0.0
        self.policy = receipts.Policy(
            window=timedelta(seconds=settings.confirm_window_seconds),
            max_redeliveries=settings.confirm_max_redeliveries,
        )

    def run(self) -> None:
        log.info("relay started", extra={"event": "relay.started"})
        while not self.stopping.is_set():
            pause = self.breaker.wait_time(time.monotonic())
            if pause:
                self.stopping.wait(pause)
                continue
            delivered = self.run_once()
            self._reconcile()
            self._report_gauges()
            if delivered == 0:
                self.stopping.wait(self.settings.relay_poll_interval)
        log.info("relay stopped", extra={"event": "relay.stopped"})

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, then return from run(): nothing claimed is dropped."""
        self.stopping.set()

    def run_once(self) -> int:
        """One round: claim, post, settle. Returns how many rows it settled."""
        batch = self.claim()
        if not batch:
            return 0
        started = time.perf_counter()
        outcome = self.ingest.post(batch)
        latency_ms = (time.perf_counter() - started) * 1000
        self.settle(batch, outcome)
        self.breaker.record(not outcome.retry or bool(outcome.forwarded), time.monotonic())
        self.metrics.emit(
            {
                "Forwarded": (len(outcome.forwarded), "Count"),
                "Failed": (len(outcome.rejected), "Count"),
                "Retried": (len(outcome.retry), "Count"),
                "ForwardLatencyMs": (latency_ms, "Milliseconds"),
            }
        )
        return len(batch)

    def claim(self) -> list[outbox.Claimed]:
        return outbox.claim(
            self.engine, self.settings.relay_batch_size, self.settings.relay_lease_seconds
        )

    def settle(self, batch: list[outbox.Claimed], outcome: Outcome) -> None:
        """Rejected rows fail now; others fail at the attempt limit, else back off."""
        by_id = {claimed.submission_id: claimed for claimed in batch}
        failed = dict(outcome.rejected)
        retry: dict[str, outbox.Retry] = {}
        for sid, reason in outcome.retry.items():
            attempts = by_id[sid].attempts + 1
            if attempts >= self.settings.relay_max_attempts:
                failed[sid] = f"gave up after {attempts} attempts: {reason}"
            else:
                retry[sid] = outbox.Retry(reason, self.backoff(attempts))
        now = utcnow()
        confirm_by = {
            sid: self.policy.confirm_by(now, by_id[sid].redeliveries) for sid in outcome.forwarded
        }
        outbox.settle(
            self.engine,
            batch,
            forwarded=outcome.forwarded,
            failed=failed,
            retry=retry,
            confirm_by=confirm_by,
        )
        for sid, reason in failed.items():
            log.error(reason, extra={"event": "submission.failed", "submission_id": sid})

    def backoff(self, attempts: int) -> timedelta:
        """Full jitter: uniform in [0, min(max, base · 2^(attempts-1))]."""
        ceiling = min(
            self.settings.relay_backoff_max, self.settings.relay_backoff_base * 2 ** (attempts - 1)
        )
        return timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311 — jitter, not crypto

    def _reconcile(self) -> None:
        """Forward again what stayed without a receipt past its window (when enabled)."""
        if not self.settings.reconcile:
            return
        if time.monotonic() - self._last_reconcile < self.settings.reconcile_interval_seconds:
            return
        self._last_reconcile = time.monotonic()
        try:
            result = receipts.reconcile(
                self.engine, utcnow(), self.policy, self.settings.relay_batch_size
            )
        except SQLAlchemyError as error:  # e.g. two relays raced on SQLite: next round
            log.warning("reconciliation round failed: %s", error, extra={"event": "relay.error"})
            return
        if result.redelivered or result.failed:
            self.metrics.emit(
                {
                    "Redelivered": (len(result.redelivered), "Count"),
                    "UnconfirmedFailed": (len(result.failed), "Count"),
                }
            )

    def _report_gauges(self, every: float = 10.0) -> None:
        if time.monotonic() - self._last_gauges < every:
            return
        self._last_gauges = time.monotonic()
        now = utcnow()
        with self.engine.begin() as connection:
            backlog, oldest = outbox.stats(connection, now)
            pending, oldest_pending = receipts.unconfirmed(connection, now)
        self.metrics.emit(
            {
                "OutboxBacklog": (backlog, "Count"),
                "OutboxOldestAgeSeconds": (oldest, "Seconds"),
                "Unconfirmed": (pending, "Count"),
                "UnconfirmedOldestAgeSeconds": (oldest_pending, "Seconds"),
            }
        )


def replay(engine: Engine, ids: list[str] | None = None) -> int:
    """Re-queue failed submissions (all, or the given ids). Returns how many."""
    count = len(outbox.replay(engine, ids))
    if count:
        log.info("re-queued %d failed submissions", count, extra={"event": "relay.replayed"})
    return count
