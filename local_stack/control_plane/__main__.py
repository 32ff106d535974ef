"""`python -m local_stack.control_plane [--port N] [--latency S]`: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from local_stack.control_plane import ControlPlane


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local_stack.control_plane")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    args = parser.parse_args()
    with ControlPlane(latency_seconds=args.latency, port=args.port) as plane:
        print(f"fake Google control plane at {plane.url}", flush=True)
        print(f"  GCP_STACK_API_ENDPOINT={plane.url} python -m gcp_stack plan", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        stopped.wait()


if __name__ == "__main__":
    main()
