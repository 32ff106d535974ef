"""The demo's story in acts, and the steady traffic that runs through them.

Each act is a change to the running local stack (GCP away, GCP back, …) with one line saying
what it shows; `Traffic` keeps posting submissions at a steady rate meanwhile, the way
clients keep arriving whatever happens behind the API. The demo runs the acts on screen; the
alarm tests run the same acts (and the fault ones) once per session and evaluate every alarm
over each act's window.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_stack.stack import LocalStack
from smoke import check


@dataclass
class Act:
    name: str
    shows: str  # one line: what this act demonstrates
    begin: Callable[[LocalStack], None] = lambda stack: None
    seconds: float = 5.0
    end: Callable[[LocalStack], None] = lambda stack: None
    started: float = 0.0
    ended: float = 0.0


def gcp_away(stack: LocalStack) -> None:
    """Ingest becomes unreachable: its process stops, its port refuses connections."""
    stack.stop_component("ingest")


def gcp_back(stack: LocalStack) -> None:
    stack.start_component("ingest")


def demo_acts(outage: float = 15.0) -> list[Act]:
    return [
        Act("normal traffic", "submissions flow AWS → GCP: accepted ≈ forwarded ≈ stored, "
            "no backlog, no alarm", seconds=6),
        Act("GCP away", "ingest is unreachable: the API keeps answering 202, the outbox "
            "backlog and its age grow, the relay's breaker opens, the backlog alarm fires",
            gcp_away, seconds=outage),
        Act("GCP back", "ingest returns: the breaker closes and the relay drains the backlog",
            gcp_back, seconds=8),
    ]  # fmt: skip


@dataclass
class Traffic:
    """Posts `rate` submissions a second in the background until stopped."""

    api_url: str
    rate: float = 20.0
    make: Callable[[int], dict[str, Any]] = field(default=lambda i: _varied()[i % 500])
    sent: list[check.Sent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")
        self._thread.start()
        return self

    def stop(self) -> list[check.Sent]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        return self.sent

    def _run(self) -> None:
        tick, index = 0.1, 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            due = max(1, round(self.rate * tick))
            bodies = [self.make(index + i) for i in range(due)]
            index += due
            self.sent += check.post_all(self.api_url, bodies, concurrency=4, progress=_quiet)
            next_at += tick
            self._stop.wait(max(0.0, next_at - time.monotonic()))


@functools.cache
def _varied() -> list[dict[str, Any]]:  # made once, on first use
    return check.varied_submissions(500)


def _quiet(_: int) -> None:
    pass


def run_acts(
    stack: LocalStack, acts: list[Act], during: Callable[[Act], None] = lambda act: None
) -> None:
    """Run each act for its seconds; `during` is called about ten times a second."""
    for act in acts:
        act.started = time.time()
        act.begin(stack)
        deadline = time.monotonic() + act.seconds
        while time.monotonic() < deadline:
            during(act)
            time.sleep(0.1)
        act.ended = time.time()
        act.end(stack)
