"""A load generator in its own process: N keep-alive connections POSTing for D seconds.

    python -m bench.load URL --connections 32 --duration 5 [--body FILE]

Prints one JSON line: requests, errors (non-2xx or transport), rate per second, latency
percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlsplit


def run(url: str, connections: int, duration: float, body: bytes, rate: float = 0.0) -> dict:
    target = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration
    interval = connections / rate if rate else 0.0  # per connection, for a steady rate

    def worker() -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine, failed = [], 0
        next_at = time.monotonic()
        while time.monotonic() < stop_at:
            if interval:
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            started = time.perf_counter()
            try:
                connection.request("POST", target.path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            if ok:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rate": len(latencies) / elapsed,
        "p50_ms": quantiles[49],
        "p99_ms": quantiles[98],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="total requests/s (0: flat out)")
    parser.add_argument("--body", required=True, help="a file with the JSON body")
    args = parser.parse_args()
    with open(args.body, "rb") as handle:
        body = handle.read()
    print(json.dumps(run(args.url, args.connections, args.duration, body, args.rate)))


if __name__ == "__main__":
    main()
