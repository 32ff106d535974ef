"""The relay: delivers the outbox to GCP's `ingest` function.

`python -m runtime.relay` runs it; `python -m runtime.relay replay` re-queues failed rows.

Each round claims a batch of due outbox rows (`FOR UPDATE SKIP LOCKED` on MySQL, then a
lease, so several relays never hold the same row), posts them to `ingest` in one request,
and settles each row by what `ingest` said about it: published → forwarded (the outbox row
goes, the submission row stays), rejected → failed, anything else → retried later with
exponential backoff and full jitter. A row that reaches the attempt limit is marked failed,
never deleted. While `ingest` keeps failing a circuit breaker stops the hammering. A relay
killed mid-batch loses nothing: its lease runs out and another round claims the rows again.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Engine, and_, case, delete, insert, select, update

from runtime.db import create_db_engine, migrate, outbox, outbox_stats, submissions, utcnow
from runtime.envelope import SCHEMA_VERSION, IngestResponse
from runtime.observability import Metrics, configure_logging
from runtime.settings import Settings, SettingsError, get_settings

log = logging.getLogger("skybridge.relay")


@dataclass(frozen=True)
class Claimed:
    outbox_id: int
    submission_id: str
    attempts: int
    item: dict[str, Any]


@dataclass
class Outcome:
    forwarded: dict[str, str] = field(default_factory=dict)  # submission id → message id
    rejected: dict[str, str] = field(default_factory=dict)  # submission id → reason
    retry: dict[str, str] = field(default_factory=dict)  # submission id → reason


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


class Relay:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        token_source: Any,
        *,
        session: requests.Session | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        settings.require("ingest_url")
        self.engine = engine
        self.settings = settings
        self.token_source = token_source
        self.session = session or _session()
        self.metrics = metrics or Metrics("none", "", "relay")
        self.breaker = CircuitBreaker(
            settings.relay_breaker_threshold,
            settings.relay_breaker_cooldown,
            max_cooldown=settings.relay_backoff_max,
        )
        self.stopping = threading.Event()
        self._last_gauges = 0.0

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        log.info("relay started", extra={"event": "relay.started"})
        while not self.stopping.is_set():
            pause = self.breaker.wait_time(time.monotonic())
            if pause:
                self.stopping.wait(pause)
                continue
            delivered = self.run_once()
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
        outcome = self.post(batch)
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

    # -- claim ------------------------------------------------------------------------------

    def claim(self) -> list[Claimed]:
        """Lease a batch of due rows to this round (a lease token no other claim shares)."""
        now = utcnow()
        token = str(uuid.uuid4())
        lease_until = now + timedelta(seconds=self.settings.relay_lease_seconds)
        with self.engine.begin() as connection:
            ids = list(
                connection.scalars(
                    select(outbox.c.id)
                    .where(outbox.c.available_at <= now)
                    .order_by(outbox.c.available_at, outbox.c.id)
                    .limit(self.settings.relay_batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            # The due-time guard makes the lease safe where FOR UPDATE is not (SQLite).
            connection.execute(
                update(outbox)
                .where(and_(outbox.c.id.in_(ids), outbox.c.available_at <= now))
                .values(available_at=lease_until, claim=token)
            )
            rows = connection.execute(
                select(
                    outbox.c.id,
                    outbox.c.attempts,
                    submissions.c.id.label("submission_id"),
                    submissions.c.body,
                    submissions.c.sha256,
                    submissions.c.received_at,
                )
                .join(submissions, submissions.c.id == outbox.c.submission_id)
                .where(outbox.c.claim == token)
                .order_by(outbox.c.id)
            ).all()
        return [
            Claimed(
                outbox_id=row.id,
                submission_id=row.submission_id,
                attempts=row.attempts,
                item=_item(row, self.settings.source),
            )
            for row in rows
        ]

    # -- post -------------------------------------------------------------------------------

    def post(self, batch: list[Claimed]) -> Outcome:
        ids = [claimed.submission_id for claimed in batch]
        try:
            headers = {"Content-Type": "application/json"}
            token = self.token_source.token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            body = {"schema_version": SCHEMA_VERSION, "items": [c.item for c in batch]}
            response = self.session.post(
                self.settings.ingest_url,
                data=json.dumps(body, separators=(",", ":")),
                headers=headers,
                timeout=self.settings.relay_timeout_seconds,
            )
        except Exception as error:  # noqa: BLE001 — any failure to deliver is retried later
            return Outcome(retry=dict.fromkeys(ids, f"{type(error).__name__}: {error}"[:900]))
        if response.status_code != 200:
            reason = f"ingest answered HTTP {response.status_code}: {response.text[:300]}"
            log.warning(reason, extra={"event": "relay.batch_failed", "batch": len(batch)})
            return Outcome(retry=dict.fromkeys(ids, reason))
        try:
            parsed = IngestResponse.model_validate_json(response.content)
        except ValueError:
            return Outcome(retry=dict.fromkeys(ids, "ingest answered with an unreadable body"))
        outcome = Outcome()
        for result in parsed.results:
            if result.submission_id not in ids:
                continue
            if result.status == "published" and result.message_id:
                outcome.forwarded[result.submission_id] = result.message_id
            elif result.status == "rejected":
                outcome.rejected[result.submission_id] = f"rejected by ingest: {result.error}"
            else:
                outcome.retry[result.submission_id] = f"ingest could not publish: {result.error}"
        for missing in set(ids) - outcome.forwarded.keys() - outcome.rejected.keys():
            outcome.retry.setdefault(missing, "ingest did not report on this submission")
        return outcome

    # -- settle -----------------------------------------------------------------------------

    def settle(self, batch: list[Claimed], outcome: Outcome) -> None:
        now = utcnow()
        by_id = {claimed.submission_id: claimed for claimed in batch}
        failed = dict(outcome.rejected)
        retry: dict[str, tuple[Claimed, str]] = {}
        for sid, reason in outcome.retry.items():
            if by_id[sid].attempts + 1 >= self.settings.relay_max_attempts:
                failed[sid] = f"gave up after {by_id[sid].attempts + 1} attempts: {reason}"
            else:
                retry[sid] = (by_id[sid], reason)
        with self.engine.begin() as connection:
            if outcome.forwarded:
                # One statement for the whole batch: a round trip per row cost more than
                # the HTTP call that delivered them.
                by_sid = submissions.c.id
                connection.execute(
                    update(submissions)
                    .where(by_sid.in_(list(outcome.forwarded)))
                    .values(
                        status="forwarded",
                        attempts=case(
                            {sid: by_id[sid].attempts + 1 for sid in outcome.forwarded},
                            value=by_sid,
                        ),
                        message_id=case(dict(outcome.forwarded), value=by_sid),
                        forwarded_at=now,
                        updated_at=now,
                        last_error=None,
                    )
                )
            for sid, reason in failed.items():
                connection.execute(
                    update(submissions)
                    .where(submissions.c.id == sid)
                    .values(
                        status="failed",
                        attempts=by_id[sid].attempts + 1,
                        last_error=reason[:1000],
                        updated_at=now,
                    )
                )
                log.error(reason, extra={"event": "submission.failed", "submission_id": sid})
            done = [by_id[sid].outbox_id for sid in (*outcome.forwarded, *failed)]
            if done:
                connection.execute(delete(outbox).where(outbox.c.id.in_(done)))
            for sid, (claimed, reason) in retry.items():
                attempts = claimed.attempts + 1
                connection.execute(
                    update(outbox)
                    .where(outbox.c.id == claimed.outbox_id)
                    .values(
                        attempts=attempts, available_at=now + self.backoff(attempts), claim=None
                    )
                )
                connection.execute(
                    update(submissions)
                    .where(submissions.c.id == sid)
                    .values(attempts=attempts, last_error=reason[:1000], updated_at=now)
                )

    def backoff(self, attempts: int) -> timedelta:
        """Full jitter: uniform in [0, min(max, base · 2^(attempts-1))]."""
        ceiling = min(
            self.settings.relay_backoff_max, self.settings.relay_backoff_base * 2 ** (attempts - 1)
        )
        return timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311 — jitter, not crypto

    def _report_gauges(self, every: float = 10.0) -> None:
        if time.monotonic() - self._last_gauges < every:
            return
        self._last_gauges = time.monotonic()
        with self.engine.begin() as connection:
            backlog, oldest = outbox_stats(connection, utcnow())
        self.metrics.emit(
            {"OutboxBacklog": (backlog, "Count"), "OutboxOldestAgeSeconds": (oldest, "Seconds")}
        )


def _item(row: Any, source: str) -> dict[str, Any]:
    envelope = json.loads(row.body)
    return {
        "submission_id": row.submission_id,
        "schema_version": envelope["schema_version"],
        "type": envelope["type"],
        "data": envelope["data"],
        "sha256": row.sha256,
        "received_at": _iso(row.received_at),
        "source": source,
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no per-request proxy lookup: it costs more than the request
    return session


def replay(engine: Engine, ids: list[str] | None = None) -> int:
    """Re-queue failed submissions (all, or the given ids). Returns how many."""
    now = utcnow()
    with engine.begin() as connection:
        query = select(submissions.c.id).where(submissions.c.status == "failed")
        if ids:
            query = query.where(submissions.c.id.in_(ids))
        failed = list(connection.scalars(query.with_for_update()))
        if not failed:
            return 0
        connection.execute(
            insert(outbox),
            [
                {"submission_id": sid, "created_at": now, "available_at": now, "attempts": 0}
                for sid in failed
            ],
        )
        connection.execute(
            update(submissions)
            .where(submissions.c.id.in_(failed))
            .values(status="accepted", attempts=0, updated_at=now)
        )
    log.info("re-queued %d failed submissions", len(failed), extra={"event": "relay.replayed"})
    return len(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.relay", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="deliver the outbox until SIGTERM (the default)")
    replay_parser = sub.add_parser("replay", help="re-queue failed submissions")
    replay_parser.add_argument("ids", nargs="*", help="submission ids (default: every failed one)")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        configure_logging(settings.log_level)
        engine = create_db_engine(settings)
        if settings.migrate_on_start:
            migrate(engine)
        if args.command == "replay":
            print(f"re-queued {replay(engine, args.ids)} failed submission(s)")
            return 0
        from runtime.token_sources import token_source_from_settings

        relay = Relay(
            engine,
            settings,
            token_source_from_settings(settings, audience=settings.ingest_url),
            metrics=Metrics(settings.metrics, settings.metrics_namespace, "relay"),
        )
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    relay.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
