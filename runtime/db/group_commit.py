"""Group commit: the accepts in flight in one process share a transaction.

A gevent worker runs many requests at once, and each accept is two small INSERTs and a
COMMIT: one round trip on MySQL (runtime.db.inserts), but the round trip, the pool checkout,
the driver's reading of three results and the server's commit are paid per request. Here
the first accept to arrive writes (the leader) and every accept that arrives while it writes
queues; when the write is done the first of those leads the next batch, which takes every
row queued by then (up to `max_entries`): one multi-row INSERT per table and one COMMIT.
Under a load of N concurrent requests a batch holds about N / pool-in-use rows; alone, a
request is its own batch of one and costs what it did.

Durability is unchanged: each request returns only after the COMMIT of the batch that
holds its rows has succeeded, and raises that batch's error otherwise (503 for a database
that went away, as before). A batch refused for a duplicate key (two requests racing with
one Idempotency-Key) is written again row by row, so only the duplicate fails (and is
answered with the first row, runtime.submissions). Nothing is retried that may have been
committed: an error from the COMMIT's round trip leaves the batch's requests failing, as a
single request's would.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.exc import IntegrityError

from runtime.db.inserts import insert_batch, insert_rows

Rows = list[tuple[Table, dict[str, Any]]]
_Event = threading.Event  # gevent's under its workers (patched), a thread's elsewhere


class _Entry:
    __slots__ = ("done", "error", "lead", "rows", "size", "taken")

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.size = sum(len(v) for _, values in rows for v in values.values() if type(v) is str)
        self.done = _Event()
        self.lead = False  # woken to lead the next batch, not because it was written
        self.error: BaseException | None = None
        self.taken = False  # in a batch being written


class GroupCommit:
    def __init__(self, engine: Engine, max_entries: int = 64, max_bytes: int = 4 << 20) -> None:
        self.engine = engine
        self.max_entries = max_entries
        # Under MySQL's max_allowed_packet (16 MiB by default on MariaDB, 64 MiB on RDS
        # MySQL 8.4) with room for escaping: bodies are up to 1 MiB each.
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._queue: deque[_Entry] = deque()
        self._writing = False

    def insert(self, rows: Rows) -> None:
        """INSERT the rows in a committed transaction, shared with concurrent callers."""
        entry = _Entry(rows)
        with self._lock:
            self._queue.append(entry)
            lead = not self._writing
            self._writing = True
        if not lead:
            try:
                entry.done.wait()
            except BaseException:
                self._abandon(entry)
                raise
            if not entry.lead:
                if entry.error is not None:
                    raise entry.error
                return
        self._lead(entry)

    def _lead(self, entry: _Entry) -> None:
        # One turn of the scheduler first: requests that are ready to run now (gevent: the
        # greenlets the hub has woken) get to queue their rows into this batch.
        time.sleep(0)
        with self._lock:
            batch = [self._queue.popleft()]  # this entry: the first queued
            size = batch[0].size
            while self._queue and len(batch) < self.max_entries:
                size += self._queue[0].size
                if size > self.max_bytes:
                    break
                batch.append(self._queue.popleft())
            for taken in batch:
                taken.taken = True
        try:
            self._write(batch)
        finally:
            self._hand_on()
            for written in batch:
                if written is not entry:
                    written.done.set()
        if entry.error is not None:
            raise entry.error

    def _write(self, batch: list[_Entry]) -> None:
        try:
            try:
                insert_batch(self.engine, [written.rows for written in batch])
            except IntegrityError:
                if len(batch) == 1:
                    raise
                # One of them is a duplicate: nothing was committed; each on its own.
                for written in batch:
                    try:
                        insert_rows(self.engine, written.rows)
                    except Exception as error:  # noqa: BLE001 — raised by its own request
                        written.error = error
        except BaseException as error:
            for written in batch:
                written.error = error
            if not isinstance(error, Exception):
                raise  # the leader was killed: the others fail with it, then it goes on

    def _hand_on(self) -> None:
        """After a batch: the first request queued meanwhile leads the next one."""
        with self._lock:
            if self._queue:
                following = self._queue[0]
                following.lead = True
                following.done.set()
            else:
                self._writing = False

    def _abandon(self, entry: _Entry) -> None:
        """A waiting request was killed (its deadline, the worker stopping). Rows not yet
        taken into a batch are withdrawn; if it had just been asked to lead, the next
        request leads instead."""
        with self._lock:
            if entry.taken:
                return  # being written (or written): its batch goes on without it
            self._queue.remove(entry)
            if not entry.lead:
                return
        self._hand_on()


_by_engine: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def group_commit(engine: Engine) -> GroupCommit:
    """The engine's group commit (one per engine in a process)."""
    found = _by_engine.get(engine)
    if found is None:
        with _registry_lock:
            found = _by_engine.setdefault(engine, GroupCommit(engine))
    return found
