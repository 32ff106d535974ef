"""Slow clients cost a connection, not a worker: under the production command line, more
connections than the API has workers x threads, each trickling its headers or its body a
byte at a time (and reconnecting when cut, as an attacker would), leave a normal POST
answering 202; the server cuts each slow one off at its read deadline."""

from __future__ import annotations

import os
import sys
import time

from bench.slow_clients import Trickler, post
from local_stack.ports import free_port
from local_stack.processes import Child, http_ready
from runtime import commands

WORKERS = 2
SLOW = 24  # more than WORKERS x 8 threads, the most any threaded model here would run
DEADLINE = 2  # seconds: the headers' (--keep-alive) and the body's read deadline
BOUND = 20.0  # seconds: generous; a starved API answers only when gunicorn kills a worker (30 s)


def test_slow_clients_do_not_starve_a_normal_post_and_are_cut_off(tmp_path):
    port = free_port()
    argv = commands.api_argv(f"127.0.0.1:{port}", WORKERS, python=sys.executable)
    assert "--keep-alive" in argv, "the header read deadline is part of the production line"
    argv[argv.index("--keep-alive") + 1] = str(DEADLINE)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SKYBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SKYBRIDGE_MIGRATE_ON_START": "true",
        "SKYBRIDGE_METRICS": "none",
        "SKYBRIDGE_REQUEST_BODY_SECONDS": str(DEADLINE),
    }
    api = Child("api", argv, env, tmp_path)
    api.start(http_ready(f"http://127.0.0.1:{port}/healthz"), timeout=30)
    try:
        with Trickler(port, SLOW) as trickler:
            time.sleep(1)  # every slow connection open and trickling
            assert post(port, b'{"type": "order.created", "data": {"id": 1}}', BOUND) is not None

            until = time.monotonic() + 60  # generous: each is cut after DEADLINE seconds
            while (
                time.monotonic() < until
                and min(trickler.cut["headers"], trickler.cut["body"]) < SLOW // 2
            ):
                time.sleep(0.5)
        assert trickler.cut["headers"] >= SLOW // 2, trickler.cut
        assert trickler.cut["body"] >= SLOW // 2, trickler.cut
        assert any(answer.startswith(b"HTTP/1.1 408 ") for answer in trickler.answers)
    finally:
        api.stop()
