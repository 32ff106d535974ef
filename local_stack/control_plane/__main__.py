"""`python -m local_stack.control_plane [--port N] [--latency S] [--strict [DELAY]]`: serve
until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading

from local_stack.control_plane import ControlPlane
from local_stack.control_plane.fidelity import Fidelity


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.control_plane")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument(
        "--strict",
        type=float,
        nargs="?",
        const=3.0,
        metavar="DELAY",
        help="behave like Google: every fidelity rule on, propagation delays of DELAY "
        "seconds (default 3)",
    )
    args = parser.parse_args()
    fidelity = Fidelity.strict(args.strict) if args.strict is not None else None
    try:
        plane = ControlPlane(latency_seconds=args.latency, port=args.port, fidelity=fidelity)
    except OSError as error:
        why = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {why}; pick another with "
              "--port (0 for a free one)", file=sys.stderr)  # fmt: skip
        return 1
    with plane:
        print(f"fake Google control plane at {plane.url}", flush=True)
        print(f"  GCP_STACK_API_ENDPOINT={plane.url} python -m gcp_stack plan", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
