"""The live view: what the clouds' dashboards would show, second by second, computed from the
signals they consume (local_stack.signals), never from a process's private counters.

`Monitor` follows the logs in a thread and keeps one `Second` per wall-clock second;
`render` draws the latest as a rich table, `plain` as one line (for a log that is not a
terminal, e.g. CI).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table

from local_stack import alarms
from local_stack.signals import Entry, Point, Signals

BREAKER_EVENTS = {"relay.circuit_open": "open", "relay.circuit_closed": "closed"}
GRACE = 0.5  # seconds a line may arrive after its second is over and still count in it


@dataclass
class Second:
    """One second of the system, as its signals describe it."""

    time: float
    accepted: int = 0  # Skybridge/Accepted (EMF, api)
    forwarded: int = 0  # Skybridge/Forwarded (EMF, relay)
    stored: int = 0  # Skybridge/Stored (EMF, relay): receipts that confirmed a submission
    backlog: float = 0  # Skybridge/OutboxBacklog (EMF gauge, relay)
    oldest_age: float = 0  # Skybridge/OutboxOldestAgeSeconds
    dead_letters: float = 0  # num_undelivered_messages on the dead-letter subscription
    p50_ms: float | None = None  # Skybridge/EndToEndLatencyMs over the last 10 s
    p99_ms: float | None = None
    breaker: str = "closed"  # the relay's circuit_open / circuit_closed entries
    firing: tuple[str, ...] = ()


@dataclass
class Monitor:
    signals: Signals
    rules: list[alarms.Rule] = field(default_factory=list)
    log_metrics: dict[str, str] = field(default_factory=dict)
    dead_letter_subscription: str = ""
    scale: float = 1.0
    interval: float = 0.25
    seconds: list[Second] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the view could not show, and why
    pending: threading.Event = field(default_factory=threading.Event)  # rules on their way
    _latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, ms)
    _gauges: dict[str, float] = field(default_factory=dict)
    _breaker: str = "closed"
    _open: dict[int, Second] = field(default_factory=dict)
    _by_metric: dict[str, list[Point]] = field(default_factory=dict)
    _log_points: list[Point] = field(default_factory=list)
    _selections: dict[str, tuple[int, list[Point]]] = field(default_factory=dict)
    _closed_until: int = 0
    # When watching began: the logs hold the stack's start-up before it (processes coming
    # up, health checks not yet answered), which is not the system's story to alarm on.
    _since: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Monitor:
        self._since = time.time()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="monitor")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following; what was read is folded in and every open second closed."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.step()
        with self.lock:
            for start in sorted(self._open):
                second = self._open.pop(start)
                firing = self.seconds[-1].firing if self.seconds else ()
                self._close(second)
                second.firing = firing  # a second cut short has no whole period to judge
                self.seconds.append(second)

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 — the view must outlive a bad line
                self.notes.append(f"the live view skipped a read: {error!r}")

    def step(self) -> None:
        """Read the new signals, fold each into the second it happened in, and close the
        seconds that are over (a line may arrive up to GRACE seconds late)."""
        points, entries = self.signals.poll()
        now = time.time()
        with self.lock:
            counted = alarms.log_metric_points(entries, self.log_metrics)
            self._log_points += counted
            self._index(points + counted)
            for point in points:
                self._point(self._second(point.time or now, now), point)
            for entry in entries:
                self._entry(self._second(entry.time or now, now), entry)
            for start in sorted(self._open):
                if start + 1 + GRACE > now:
                    break
                second = self._open.pop(start)
                self._close(second)
                self.seconds.append(second)
                self._closed_until = start + 1

    def _second(self, when: float, now: float) -> Second:
        """The open second `when` falls in; a line later than GRACE counts in the oldest
        one still open (so nothing is dropped), a clock ahead of ours in the current."""
        start = int(min(when, now))
        if start < self._closed_until:
            start = min(self._open) if self._open else self._closed_until
        if start not in self._open:
            self._open[start] = Second(float(start))
        return self._open[start]

    def _close(self, second: Second) -> None:
        second.backlog = self._gauges.get("OutboxBacklog", 0)
        second.oldest_age = self._gauges.get("OutboxOldestAgeSeconds", 0)
        second.dead_letters = self._gauges.get("dead_letters", 0)
        second.breaker = self._breaker
        recent = [ms for at, ms in self._latencies if at > second.time - 10]
        if len(recent) >= 2:
            quantiles = statistics.quantiles(recent, n=100, method="inclusive")
            second.p50_ms, second.p99_ms = quantiles[49], quantiles[98]
        elif recent:
            second.p50_ms = second.p99_ms = recent[0]
        second.firing = self.firing(second.time + 1)

    def _point(self, second: Second, point: Point) -> None:
        if point.namespace == "Skybridge":
            if point.name == "Accepted":
                second.accepted += int(point.value)
            elif point.name == "Forwarded":
                second.forwarded += int(point.value)
            elif point.name == "Stored":
                second.stored += int(point.value)
            elif point.name == "EndToEndLatencyMs":
                self._latencies.append((point.time, point.value))
            elif point.name in ("OutboxBacklog", "OutboxOldestAgeSeconds"):
                self._gauges[point.name] = point.value
        elif (
            point.name.endswith("subscription/num_undelivered_messages")
            and point.labels.get("resource.labels.subscription_id") == self.dead_letter_subscription
        ):
            self._gauges["dead_letters"] = point.value

    def _entry(self, second: Second, entry: Entry) -> None:
        event = entry.payload.get("event")
        if event in BREAKER_EVENTS:
            self._breaker = BREAKER_EVENTS[event]

    def add_rules(self, rules: list[alarms.Rule]) -> None:
        """More alarms to watch (the CloudWatch ones arrive after the synth): the seconds
        already seen are judged again, so the timeline shows them from the start."""
        with self.lock:
            self.rules += rules
            for second in self.seconds:
                second.firing = self.firing(second.time + 1)

    def all_points(self) -> list[Point]:
        """Every metric point so far, the log-based metrics' included."""
        return self.signals.points + self._log_points

    def _index(self, points: list[Point]) -> None:
        for point in points:
            key = f"{point.namespace}/{point.name}" if point.namespace else point.name
            self._by_metric.setdefault(key, []).append(point)

    def firing(self, at: float) -> tuple[str, ...]:
        """The alarms in ALARM at `at`, each judged over its own metric's points only."""
        names = []
        for rule in self.rules:
            period, _ = rule.scaled(self.scale)
            origin = max(self._since, self.seconds[0].time + 1 if self.seconds else 0.0)
            if at - rule.evaluation_periods * period < origin:
                continue  # not yet a whole evaluation's worth of data seen since watching began
            chosen = self._selected(rule)
            if rule.state_at(chosen, at, self.scale, selected=True) == alarms.ALARM:
                names.append(rule.name)
        return tuple(names)

    def _selected(self, rule: alarms.Rule) -> list[Point]:
        points = self._by_metric.get(rule.metric, [])
        cached = self._selections.get(rule.name)
        if cached is None or cached[0] != len(points):
            cached = (len(points), rule.select(points))
            self._selections[rule.name] = cached
        return cached[1]

    def latest(self) -> Second | None:
        """The last complete second."""
        with self.lock:
            return self.seconds[-1] if self.seconds else None

    def totals(self) -> dict[str, int]:
        with self.lock:
            return {
                "accepted": sum(s.accepted for s in self.seconds),
                "forwarded": sum(s.forwarded for s in self.seconds),
                "stored": sum(s.stored for s in self.seconds),
            }


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def render(monitor: Monitor, title: str = "skybridge — live") -> Table:
    second = monitor.latest() or Second(time.time())
    totals = monitor.totals()
    table = Table(title=title, show_header=True, expand=False)
    for column in ("signal", "last second", "total / state"):
        table.add_column(column)
    table.add_row("accepted (202)", str(second.accepted), str(totals["accepted"]))
    table.add_row("forwarded to GCP", str(second.forwarded), str(totals["forwarded"]))
    table.add_row("stored (receipts)", str(second.stored), str(totals["stored"]))
    table.add_row("outbox backlog", f"{second.backlog:.0f}", f"oldest {second.oldest_age:.0f} s")
    table.add_row("dead letters", f"{second.dead_letters:.0f}", "")
    table.add_row("end to end", f"p50 {_ms(second.p50_ms)}", f"p99 {_ms(second.p99_ms)}")
    colour = "red" if second.breaker == "open" else "green"
    table.add_row("relay breaker", f"[{colour}]{second.breaker}", "")
    firing = ", ".join(second.firing) if second.firing else "none"
    table.add_row("alarms firing", f"[{'red' if second.firing else 'green'}]{firing}", "")
    return table


def plain(second: Second | None) -> str:
    if second is None:
        return "waiting for the first second of signals"
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(second.time))} accepted {second.accepted}/s"
        f" forwarded {second.forwarded}/s stored {second.stored}/s backlog {second.backlog:.0f}"
        f" oldest {second.oldest_age:.0f}s dead-letters {second.dead_letters:.0f}"
        f" p50 {_ms(second.p50_ms)} p99 {_ms(second.p99_ms)} breaker {second.breaker}"
        f" firing {','.join(second.firing) or 'none'}"
    )


def firing_spans(seconds: Sequence[Second]) -> dict[str, list[tuple[float, float]]]:
    """For each alarm, the [start, end) spans of seconds it was firing (for the timeline)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for second in seconds:
        for name in second.firing:
            runs = spans.setdefault(name, [])
            if runs and runs[-1][1] == second.time:
                runs[-1] = (runs[-1][0], second.time + 1)
            else:
                runs.append((second.time, second.time + 1))
    return spans
