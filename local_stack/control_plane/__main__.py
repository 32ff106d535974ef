"""`python -m local_stack.control_plane [--port N] [--latency S] [--strict [DELAY]]`: serve
until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from local_stack.control_plane import ControlPlane
from local_stack.control_plane.fidelity import Fidelity


def main() -> None:
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
    with ControlPlane(latency_seconds=args.latency, port=args.port, fidelity=fidelity) as plane:
        print(f"fake Google control plane at {plane.url}", flush=True)
        print(f"  GCP_STACK_API_ENDPOINT={plane.url} python -m gcp_stack plan", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        stopped.wait()


if __name__ == "__main__":
    main()
