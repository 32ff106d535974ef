"""Load generation in its own process: N keep-alive connections POSTing one body for D seconds.

`wrk` (C, epoll) when it is installed, because on a 2-core machine the generator shares the
CPU with the server it measures: a Python generator with 32 threads costs about three times
as much CPU per request as wrk, and that CPU comes out of the server's share. Without wrk
the Python generator below runs instead (`python -m bench.load`), and the run says so.

    python -m bench.load URL --body FILE [--connections 32] [--duration 5] [--rate 100]

prints one JSON line: requests, errors (non-2xx or transport), rate per second, latency
percentiles in milliseconds. `--rate` paces the Python generator to a steady total rate
(wrk cannot pace; the steady-rate benchmarks always use the Python generator, and at
100 requests/s it costs little).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

WRK_HINT = "install wrk for figures that measure the server, not the generator: apt-get install wrk"


def wrk_path() -> str | None:
    return shutil.which("wrk")


def measure(url: str, body: bytes, connections: int, duration: float, rate: float = 0.0) -> dict:
    """One load run from a separate process: wrk if installed (and no pacing), else Python."""
    if wrk_path() and not rate:
        return _wrk(url, body, connections, duration)
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(body)
        handle.flush()
        argv = [sys.executable, "-m", "bench.load", url, "--body", handle.name]
        argv += ["--connections", str(connections), "--duration", str(duration)]
        argv += ["--rate", str(rate)]
        done = subprocess.run(
            argv, capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent
        )
    return json.loads(done.stdout)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS_MS[unit]


def _wrk(url: str, body: bytes, connections: int, duration: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        # A long bracket string holds any JSON body verbatim.
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body.decode()}]==]\n"
        )
        script.flush()
        argv = [wrk_path(), "-t1", f"-c{connections}", f"-d{max(round(duration), 1)}s"]
        argv += ["--timeout", "10s", "--latency", "-s", script.name, url]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    percentiles = dict(re.findall(r"\b(50|99)%\s+([\d.]+(?:us|ms|s|m))", out))
    if set(percentiles) != {"50", "99"}:  # no request finished: there is no distribution
        percentiles = {"50": "0ms", "99": "0ms"}
    return {
        "requests": requests - (int(non_2xx.group(1)) if non_2xx else 0),
        "errors": errors,
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
        "loader": "wrk",
    }


def run(url: str, connections: int, duration: float, body: bytes, rate: float = 0.0) -> dict:
    """The Python generator: one thread per connection, http.client keep-alive."""
    target = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration
    interval = connections / rate if rate else 0.0  # per connection, for a steady rate

    def worker(offset: float) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine, failed = [], 0
        next_at = time.monotonic() + offset
        while time.monotonic() < stop_at:
            if interval:
                pause = next_at - time.monotonic()
                next_at += interval
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

    # Paced connections start staggered, so a steady rate is steady from the first second.
    threads = [
        threading.Thread(target=worker, args=(i * interval / connections,))
        for i in range(connections)
    ]
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
        "loader": "python",
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="total requests/s (0: flat out)")
    parser.add_argument("--body", required=True, help="a file with the JSON body")
    args = parser.parse_args()
    body = Path(args.body).read_bytes()
    print(json.dumps(run(args.url, args.connections, args.duration, body, args.rate)))


if __name__ == "__main__":
    main()
