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

from runtime import outbox, receipts, retention
from runtime.db import utcnow
from runtime.observability import Metrics
from runtime.relay.breaker import CircuitBreaker
from runtime.relay.ingest_client import IngestClient, Item, Outcome, pack, serialise
from runtime.settings import Settings
from runtime.token_sources import TokenSource

log = logging.getLogger("skybridge.relay")
# However long the database has been away, try again at least this often: an RDS failover
# takes 60-120 s, and the relay should resume within seconds of it.
DATABASE_BACKOFF_MAX = 15.0
# The backlog gauge counts at most this many outbox rows (an index scan that stops there):
# uncapped, every relay read the whole outbox every gauge interval, which grew with the
# very backlog it reported. The alarms watch the oldest row's age, which is one lookup.
BACKLOG_GAUGE_CAP = 100_000


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
            session=session,
        )
        self.metrics = metrics or Metrics("none", "", "relay")
        self.breaker = CircuitBreaker(
            settings.relay_breaker_threshold,
            settings.relay_breaker_cooldown,
            max_cooldown=settings.relay_backoff_max,
        )
        self.stopping = threading.Event()
        self.healthy = True
        self._database_failures = 0
        self._last_gauges = 0.0
        self._last_reconcile = 0.0
        self._next_purge = 0.0
        self.retention = retention.Policy(
            stored_days=settings.retention_stored_days,
            failed_days=settings.retention_failed_days,
        )
        self.policy = receipts.Policy(
            window=timedelta(seconds=settings.confirm_window_seconds),
            max_redeliveries=settings.confirm_max_redeliveries,
        )

    def run(self) -> None:
        """Deliver until stop(). The database going away (a failover, a restart, the
        network) is waited out with backoff, reported as RelayHealthy 0, never fatal."""
        log.info("relay started", extra={"event": "relay.started"})
        while not self.stopping.is_set():
            pause = self.breaker.wait_time(time.monotonic())
            try:
                # Before the breaker's pause: the backlog gauges matter most while GCP is away.
                self._report_gauges()
                if pause:
                    self.stopping.wait(min(pause, self.settings.relay_gauge_interval))
                    continue
                delivered = self.run_once()
                self._reconcile()
                self._purge()
            except SQLAlchemyError as error:
                self.stopping.wait(self._database_failed(error))
                continue
            if not self.healthy:
                self.healthy, self._database_failures, self._last_gauges = True, 0, 0.0
                log.info("database reachable again", extra={"event": "relay.db_recovered"})
                self._report_gauges()
            if delivered < self.settings.relay_batch_size:
                # Caught up: wait for a batch to gather instead of sending each row as it
                # arrives (a round costs two transactions and a request, whatever it holds).
                # A full batch means more is waiting: straight on.
                self.stopping.wait(self.settings.relay_poll_interval)
        log.info("relay stopped", extra={"event": "relay.stopped"})

    def _database_failed(self, error: SQLAlchemyError) -> float:
        """Report the failure; returns how long to wait before the next try. Whatever was
        claimed and not settled comes back when its lease runs out."""
        self.healthy = False
        self._database_failures += 1
        delay = min(
            DATABASE_BACKOFF_MAX,
            self.settings.relay_backoff_base * 2 ** min(self._database_failures - 1, 16),
        )
        log.warning(
            "database unavailable (%s); retrying in %.1fs",
            type(error).__name__,
            delay,
            extra={"event": "relay.db_unavailable", "failures": self._database_failures},
        )
        self.metrics.emit({"RelayHealthy": (0, "None"), "DatabaseErrors": (1, "Count")})
        return delay

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, then return from run(): nothing claimed is dropped."""
        self.stopping.set()

    def run_once(self) -> int:
        """One round: claim, post, settle. Returns how many rows it settled."""
        batch = self.claim()
        if not batch:
            return 0
        started = time.perf_counter()
        outcome = Outcome()
        items = []
        for claimed in batch:
            try:
                items.append(serialise(claimed, self.settings.source))
            except (ValueError, KeyError, TypeError) as error:
                reason = f"cannot be forwarded as JSON: {error}"
                outcome.rejected[claimed.submission_id] = reason
        for chunk in pack(items, self.settings.relay_batch_max_bytes):
            outcome = outcome.merge(self.deliver(chunk))
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

    def deliver(self, items: list[Item], first: Outcome | None = None) -> Outcome:
        """Post the items; when ingest refuses or loses the request as a whole, split it
        until the culprit is alone, so one bad item never holds back the others.

        A refusal (400, 413, 422) is about what was sent: both halves are tried, down to
        single items, and a single refused item is rejected. Any other failure is retried
        later, unless the two halves disagree: an outage fails both (one round costs three
        requests, and the breaker counts it), a batch that fails for what is in it fails
        in one half only, which is split further. (Two such culprits in both halves look
        like an outage and the batch is retried; the jittered backoff puts its rows into
        other batches next time.)
        """
        outcome = first or self.ingest.post(items)
        if outcome.batch_error is None:
            return outcome
        if len(items) == 1:
            if not outcome.permanent:
                return outcome
            reason = f"ingest refused it on its own: {outcome.batch_error}"
            return Outcome(rejected={items[0].submission_id: reason})
        middle = len(items) // 2
        left, right = items[:middle], items[middle:]
        if outcome.permanent:
            return self.deliver(left).merge(self.deliver(right))
        left_outcome, right_outcome = self.ingest.post(left), self.ingest.post(right)
        if left_outcome.batch_error and right_outcome.batch_error:
            return outcome
        return self.deliver(left, left_outcome).merge(self.deliver(right, right_outcome))

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
        """Forward again what stayed without a receipt past its window. Only where receipts
        are consumed: without them every submission would look lost."""
        if not (self.settings.reconcile and self.settings.receipts_subscription):
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

    def _purge(self) -> None:
        """Purge what is past retention, a few short batches at a time (delivery goes on
        between them); soon again while rows are still due, else every purge interval."""
        if not (self.retention.stored_days or self.retention.failed_days):
            return
        if time.monotonic() < self._next_purge:
            return
        try:
            purged = retention.purge(
                self.engine,
                utcnow(),
                self.retention,
                batch_size=self.settings.purge_batch_size,
                max_batches=self.settings.purge_max_batches,
            )
        except SQLAlchemyError as error:  # e.g. a lock wait on SQLite: next round
            log.warning("retention purge failed: %s", error, extra={"event": "relay.error"})
            purged = retention.Purged()
        pause = 1.0 if purged.more else self.settings.purge_interval_seconds
        self._next_purge = time.monotonic() + pause
        self.metrics.emit(
            {
                "PurgedStored": (purged.stored, "Count"),
                "PurgedFailed": (purged.failed, "Count"),
            }
        )

    def _report_gauges(self) -> None:
        if time.monotonic() - self._last_gauges < self.settings.relay_gauge_interval:
            return
        self._last_gauges = time.monotonic()
        now = utcnow()
        with self.engine.begin() as connection:
            backlog, oldest = outbox.stats(connection, now, cap=BACKLOG_GAUGE_CAP)
            pending, oldest_pending = receipts.unconfirmed(connection, now)
        self.metrics.emit(
            {
                "OutboxBacklog": (backlog, "Count"),
                "OutboxOldestAgeSeconds": (oldest, "Seconds"),
                "Unconfirmed": (pending, "Count"),
                "UnconfirmedOldestAgeSeconds": (oldest_pending, "Seconds"),
                "RelayHealthy": (1, "None"),
            }
        )


def replay(engine: Engine, ids: list[str] | None = None) -> int:
    """Re-queue failed submissions (all, or the given ids). Returns how many."""
    count = len(outbox.replay(engine, ids))
    if count:
        log.info("re-queued %d failed submissions", count, extra={"event": "relay.replayed"})
    return count
