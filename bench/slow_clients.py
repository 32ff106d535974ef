"""slow-clients: normal POSTs to our API while more connections than it has workers x threads
trickle their headers or bodies a byte at a time, under each worker model measured
(production's, sync, gthread), against the same POSTs with no slow client."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.accept import OTHER_MODELS
from bench.harness import Extra, Outcome, Record, Settings, api_env, serve
from runtime import commands

TIMEOUT = 5.0  # seconds a normal POST may take before it counts as starved


class Trickler:
    """`count` connections, half trickling headers and half a body, one byte each per tick;
    one the server cuts off (an answer, EOF or a reset) is counted and replaced, as an
    attacker reconnects."""

    def __init__(self, port: int, count: int, tick: float = 0.1) -> None:
        self.port = port
        self.count = count
        self.tick = tick
        self.cut: Counter[str] = Counter()
        self.answers: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> Trickler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def open(self, kind: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if kind == "body":  # complete headers, then a body that never quite arrives
            sock.sendall(
                b"POST /v1/submissions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
        sock.setblocking(False)
        return sock

    def run(self) -> None:
        prefix = {"headers": b"POST /v1/submissions HTTP/1.1\r\nHost: x\r\nX-Slow: ", "body": b""}
        kinds = ["headers", "body"] * (self.count // 2) + ["headers"] * (self.count % 2)
        conns = [[kind, self.open(kind), 0] for kind in kinds]
        while not self.stopping.wait(self.tick):
            for conn in conns:
                kind, sock, sent = conn
                start = prefix[kind]
                byte = start[sent : sent + 1] if sent < len(start) else b"a"
                try:
                    with contextlib.suppress(BlockingIOError):
                        answer = sock.recv(4096)
                        if answer:
                            self.answers.append(answer)
                        raise ConnectionResetError  # an answer or EOF: the server is done
                    sock.send(byte)
                    conn[2] += 1
                except OSError:
                    sock.close()
                    self.cut[kind] += 1
                    with contextlib.suppress(OSError):
                        conn[1:] = [self.open(kind), 0]
        for _, sock, _ in conns:
            sock.close()


def post(port: int, body: bytes, timeout: float = TIMEOUT) -> float | None:
    """One normal POST on a new connection: its latency in ms, or None if not a timely 202."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/v1/submissions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        ok = response.status == 202
    except OSError:
        ok = False
    finally:
        connection.close()
    return (time.perf_counter() - started) * 1000 if ok else None


@dataclass
class SlowExtra(Extra):
    slow_connections: int
    answered: int
    sent: int
    quiet_p99_ms: float | None
    models: dict[str, dict]  # model → answered, sent, p99_ms under the slow clients


def posts(port: int, body: bytes, seconds: float) -> tuple[list[float], int]:
    """Normal POSTs one after another for `seconds`: latencies of the 202s, and how many sent."""
    latencies, sent, until = [], 0, time.monotonic() + seconds
    while time.monotonic() < until:
        sent += 1
        latency = post(port, body)
        if latency is not None:
            latencies.append(latency)
    return latencies, sent


def p99(latencies: list[float]) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1)


def bench_slow_clients(cfg: Settings, logs: Path, tmp: Path) -> Outcome:
    env = api_env(f"sqlite:///{tmp / f'slow-{uuid.uuid4().hex[:6]}.sqlite3'}")
    body = json.dumps({"type": "bench.sample", "data": {"n": 1}}).encode()
    threads = max(int(options[-1]) for options in OTHER_MODELS.values() if "--threads" in options)
    count = cfg.workers * threads + 8  # more than any model here has workers x threads
    seconds = max(cfg.duration * 2, 2.0)
    production = commands.api_argv("127.0.0.1:0", 1)
    model = production[production.index("--worker-class") + 1]
    models: dict[str, tuple[str, ...]] = {"production": (), **OTHER_MODELS}
    measured: dict[str, dict] = {}
    quiet: list[float] = []
    for label, options in models.items():
        child, url = serve(
            f"slow-{uuid.uuid4().hex[:4]}", commands.APP, env, logs, cfg.workers, options
        )
        port = int(url.rsplit(":", 1)[1])
        try:
            if not quiet:
                quiet, _ = posts(port, body, seconds)
            with Trickler(port, count):
                time.sleep(1.0)  # every slow connection open and trickling
                latencies, sent = posts(port, body, seconds)
        finally:
            child.stop()
        measured[label] = {"answered": len(latencies), "sent": sent, "p99_ms": p99(latencies)}
    ours = measured["production"]
    ours_p99, quiet_p99 = ours["p99_ms"], p99(quiet)
    ratio = round(ours_p99 / quiet_p99, 2) if ours_p99 and quiet_p99 else None
    extra = SlowExtra(
        slow_connections=count,
        answered=ours["answered"],
        sent=ours["sent"],
        quiet_p99_ms=quiet_p99,
        models=measured,
    )
    met = bool(ratio is not None and ours["answered"] == ours["sent"] and ratio <= 3.0)
    records = [
        Record(
            "slow-clients",
            ours_p99 if ours_p99 is not None else 0.0,
            "ms p99",
            "the same POSTs with no slow client",
            quiet_p99,
            ratio,
            f"every POST 202 within {TIMEOUT:g} s, p99 ≤ 3x, {count} trickling ({model})",
            met,
            extra,
        )
    ]
    for label, figures in measured.items():
        if label == "production":
            continue
        records.append(
            Record(
                f"slow-clients-{label}",
                figures["answered"],
                f"of {figures['sent']} answered",
                f"p99 {figures['p99_ms']} ms" if figures["p99_ms"] else "none answered",
                None,
                None,
                f"information: ours under {' '.join(OTHER_MODELS[label][1:])}, "
                f"{cfg.workers} workers, {count} trickling",
                None,
            )
        )
    return Outcome(records)
