"""Concurrent accepts share a transaction (runtime.db.group_commit), on SQLite and MariaDB,
and each one still gets its own outcome: committed before it returns, its own error, its
own idempotent replay."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from runtime.db import group_commit, inserts, outbox, submissions
from runtime.envelope import SubmissionIn
from runtime.submissions import accept

FOLLOWERS = 12


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


class HeldFirstBatch:
    """Holds the first batch's write until every other caller has queued behind it, so the
    batches are known: [1, FOLLOWERS], not whatever the scheduler made of it. Records the
    size of every batch written; the writes themselves are the real ones."""

    def __init__(self, monkeypatch, committer, expected: int, batch_write=None, ready=None):
        self.sizes: list[int] = []
        self.holding = threading.Event()  # the first batch's write has begun
        self.committer, self.expected = committer, expected
        self.ready = ready or (lambda: True)
        real_rows, real_batch = inserts.insert_rows, batch_write or inserts.insert_batch

        def rows(engine, rows):
            self.wait_for_the_others()
            self.sizes.append(1)
            real_rows(engine, rows)

        def batch(engine, batch):
            self.wait_for_the_others()
            self.sizes.append(len(batch))
            real_batch(engine, batch)

        monkeypatch.setattr(group_commit, "insert_rows", rows)
        monkeypatch.setattr(group_commit, "insert_batch", batch)

    def wait_for_the_others(self) -> None:
        if self.sizes:
            return
        self.holding.set()
        deadline = time.monotonic() + 10
        while len(self.committer._queue) < self.expected or not self.ready():
            queued = len(self.committer._queue)
            assert time.monotonic() < deadline, f"the others never queued: {queued}"
            time.sleep(0.001)


def run_all(calls, held: HeldFirstBatch, finished=None) -> list:
    results: list = [None] * len(calls)

    def run(n, call):
        try:
            results[n] = call()
        except BaseException as error:  # noqa: BLE001 — the test looks at each outcome
            results[n] = error
            if finished is not None:
                finished.set()

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    threads[0].start()
    assert held.holding.wait(10)  # the first caller is writing its batch of one
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(20)
    return results


class Call:
    def __init__(self, engine, n: int, key: str | None = None, data=None) -> None:
        self.engine, self.n, self.key = engine, n, key
        self.data = data if data is not None else {"n": n}

    def __call__(self):
        return accept(self.engine, SubmissionIn(type="t", data=self.data), self.key)


def counts(engine) -> tuple[int, int]:
    with engine.begin() as connection:
        return (
            connection.scalar(select(func.count()).select_from(submissions)),
            connection.scalar(select(func.count()).select_from(outbox)),
        )


def test_accepts_queued_behind_a_write_go_in_one_transaction(engine, monkeypatch):
    held = HeldFirstBatch(monkeypatch, group_commit.group_commit(engine), FOLLOWERS)
    results = run_all([Call(engine, n) for n in range(FOLLOWERS + 1)], held)
    assert held.sizes == [1, FOLLOWERS]
    ids = [result.row["id"] for result in results]
    assert len(set(ids)) == FOLLOWERS + 1
    assert counts(engine) == (FOLLOWERS + 1, FOLLOWERS + 1)
    with engine.begin() as connection:
        stored = dict(connection.execute(select(submissions.c.id, submissions.c.sha256)).all())
    assert stored == {result.row["id"]: result.row["sha256"] for result in results}


def test_one_duplicate_key_in_a_batch_fails_alone_and_replays(engine, monkeypatch):
    held = HeldFirstBatch(monkeypatch, group_commit.group_commit(engine), FOLLOWERS)
    calls = [Call(engine, 0)] + [Call(engine, n) for n in range(1, FOLLOWERS - 1)]
    calls += [Call(engine, 99, key="order-1", data={"o": 1})] * 2  # the same key, racing
    results = run_all(calls, held)
    assert held.sizes[:2] == [1, FOLLOWERS], results  # then each on its own
    first, second = results[-2:]
    assert first.row["id"] == second.row["id"]
    assert sorted([first.replayed, second.replayed]) == [False, True]
    assert all(not isinstance(result, Exception) for result in results)
    assert counts(engine) == (FOLLOWERS, FOLLOWERS)


def test_a_failed_batch_fails_every_request_in_it_and_commits_none(engine, monkeypatch):
    def database_gone(engine, batch):
        inserts.insert_batch(engine, batch)
        if len(batch) == 1:
            return  # the first request's batch of one, written before the database went
        # The batch after it: written, but the COMMIT's answer is lost ...
        raise OperationalError("COMMIT", {}, Exception("server has gone away"))

    committer = group_commit.group_commit(engine)
    held = HeldFirstBatch(monkeypatch, committer, FOLLOWERS, batch_write=database_gone)
    results = run_all([Call(engine, n) for n in range(FOLLOWERS + 1)], held)
    assert held.sizes == [1, FOLLOWERS]
    assert not isinstance(results[0], Exception)
    # ... so every request of that batch fails (503), none is told it was accepted
    assert all(isinstance(result, OperationalError) for result in results[1:])
    assert not committer._writing  # and the next request leads a batch of its own
    assert not isinstance(Call(engine, 100)(), Exception)


def test_a_request_killed_while_it_waits_withdraws_its_rows(engine, monkeypatch):
    class Killed(BaseException):
        """What gevent raises in a greenlet killed while it waits (a deadline)."""

    class KilledOnce(threading.Event):
        killed = 0

        def wait(self, timeout=None):
            if not KilledOnce.killed:
                KilledOnce.killed += 1
                raise Killed
            return super().wait(timeout)

    committer = group_commit.group_commit(engine)
    withdrawn = threading.Event()
    held = HeldFirstBatch(monkeypatch, committer, FOLLOWERS - 1, ready=withdrawn.is_set)
    monkeypatch.setattr(group_commit, "_Event", KilledOnce)
    results = run_all([Call(engine, n) for n in range(FOLLOWERS + 1)], held, finished=withdrawn)
    assert held.sizes == [1, FOLLOWERS - 1]
    assert sum(isinstance(result, Killed) for result in results) == 1
    assert counts(engine) == (FOLLOWERS, FOLLOWERS)  # everyone's rows but the killed one's
    assert not committer._writing
