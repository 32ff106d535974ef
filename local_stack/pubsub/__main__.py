"""`python -m local_stack.pubsub --port 8085`: the emulator until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from local_stack.pubsub.monitoring import PublishCounter, write_samples
from local_stack.pubsub.server import PubSubEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.pubsub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085, help="0 picks a free port")
    parser.add_argument(
        "--sample-interval",
        type=float,
        default=0,
        metavar="SECONDS",
        help="write each subscription's backlog gauges this often (0: never)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    emulator = PubSubEmulator(args.host, args.port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    try:
        emulator.start()
    except OSError as error:
        print(f"error: {error}; pick another with --port (0 for a free one)", file=sys.stderr)
        return 1
    print(f"listening on {emulator.address}", flush=True)
    tick = args.sample_interval or 0.5
    counter = PublishCounter(emulator.broker)
    while not stopped.wait(tick):
        if args.sample_interval:
            write_samples(emulator.broker, counter)
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
