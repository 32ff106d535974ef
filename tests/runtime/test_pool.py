"""The API's connection pool serves waiters first come, first served (runtime.db.pool).

Each behaviour is also run against SQLAlchemy's own queue or pool as a control, which must
show the unfairness: otherwise the test could not tell the two apart.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy.util.queue import Empty, Queue

from runtime.db import pool
from runtime.db.pool import FairQueue


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def waiting_thread(queue: Queue, got: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: got.append(queue.get(True, 5)), daemon=True)
    thread.start()
    return thread


def test_a_connection_put_back_goes_to_the_waiter_not_to_a_newcomer():
    queue = FairQueue(1)
    queue.put("connection")
    held = queue.get(False)
    got: list[str] = []
    thread = waiting_thread(queue, got)
    wait_for(lambda: len(queue._waiters) == 1)
    queue.put(held)
    with pytest.raises(Empty):
        queue.get(False)  # a newcomer queues behind the waiter
    thread.join(5)
    assert got == ["connection"]


def test_control_sqlalchemys_queue_lets_a_newcomer_take_it():
    queue: Queue = Queue(1)
    queue.put("connection")
    held = queue.get(False)
    got: list[str] = []
    thread = waiting_thread(queue, got)
    time.sleep(0.05)  # the waiter is waiting on the condition by now
    queue.put(held)
    assert queue.get(False) == "connection"  # taken ahead of the waiter
    queue.put("connection")
    thread.join(5)


def test_waiters_are_served_in_the_order_they_came():
    queue = FairQueue(3)
    got: list[tuple[int, str]] = []
    threads = []
    for n in range(3):
        threads.append(
            threading.Thread(target=lambda n=n: got.append((n, queue.get(True, 5))), daemon=True)
        )
        threads[-1].start()
        wait_for(lambda n=n: len(queue._waiters) == n + 1)
    for item in ("a", "b", "c"):
        queue.put(item)
    for thread in threads:
        thread.join(5)
    assert sorted(got) == [(0, "a"), (1, "b"), (2, "c")]


def test_a_waiter_that_times_out_leaves_the_line():
    queue = FairQueue(1)
    started = time.monotonic()
    with pytest.raises(Empty):
        queue.get(True, 0.05)
    assert time.monotonic() - started >= 0.05
    assert not queue._waiters
    queue.put("connection")
    assert queue.get(False) == "connection"  # not handed to the waiter that left


class Killed(BaseException):
    """What gevent raises in a greenlet killed while it waits (GreenletExit, Timeout)."""


def test_a_waiter_killed_as_it_is_handed_a_connection_passes_it_on(monkeypatch):
    class KilledOnWaking(pool._Waiter):
        def __init__(self, mutex) -> None:
            super().__init__(mutex)
            wait = self.ready.wait

            def killed(timeout=None):
                wait(timeout)
                raise Killed  # arrives after the hand-over, before the waiter returns

            self.ready.wait = killed  # type: ignore[method-assign]

    monkeypatch.setattr(pool, "_Waiter", KilledOnWaking)
    queue = FairQueue(1)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            queue.get(True, 5)
        except Killed as error:
            errors.append(error)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    wait_for(lambda: len(queue._waiters) == 1)
    queue.put("connection")
    thread.join(5)
    assert len(errors) == 1
    assert queue.get(False) == "connection"  # not lost with the waiter


def test_nothing_waiting_and_nothing_free_is_empty_at_once():
    with pytest.raises(Empty):
        FairQueue(1).get(False)


# Under gevent, as in the API's workers: greenlets take turns on a pool of one connection,
# each holding it across a yield (a query) and asking again at once after returning it.
GEVENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey; monkey.patch_all()
    import json, sqlite3, sys
    import gevent
    from sqlalchemy.pool import QueuePool
    from runtime.db.pool import FairQueuePool

    pool_class = FairQueuePool if sys.argv[1] == "fair" else QueuePool
    pool = pool_class(lambda: sqlite3.connect(":memory:", check_same_thread=False),
                      pool_size=1, max_overflow=0, timeout=5, reset_on_return=None)
    order = []

    def client(name):
        for _ in range(5):
            connection = pool.connect()
            order.append(name)
            gevent.sleep(0)  # the query: other greenlets run and ask for the connection
            connection.close()

    gevent.joinall([gevent.spawn(client, n) for n in range(4)])
    print(json.dumps({"order": order}))
    """
)


def run_under_gevent(kind: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, kind],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def longest_run(order: list[int]) -> int:
    longest = run = 1
    for before, after in itertools.pairwise(order):
        run = run + 1 if before == after else 1
        longest = max(longest, run)
    return longest


def test_greenlets_take_turns_on_the_pool():
    result = run_under_gevent("fair")
    assert len(result["order"]) == 20
    # Nobody gets the connection twice in a row while three others wait for it.
    assert longest_run(result["order"]) == 1


def test_control_under_queuepool_one_greenlet_keeps_the_connection():
    order = run_under_gevent("queue")["order"]
    assert longest_run(order) == 5  # each greenlet's five turns in one go: the others wait
