"""`python -m local_stack {up,demo}`: skybridge on one machine."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from local_stack.stack import LocalStack, Options


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument(
        "--db",
        default="",
        metavar="URL",
        help="database URL, e.g. mysql+pymysql://root@127.0.0.1:3306/skybridge (default: SQLite)",
    )
    parser.add_argument(
        "--pubsub",
        choices=["ours", "google"],
        default="ours",
        help="Pub/Sub emulator: ours (default) or Google's (needs gcloud's pubsub-emulator)",
    )
    parser.add_argument("--workdir", type=Path, help="logs and SQLite file (default: a temp dir)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start everything and wait for Ctrl-C")
    demo = sub.add_parser("demo", help="start, push submissions through, check, stop")
    demo.add_argument("--count", type=int, default=300, help="submissions to send (default 300)")
    demo.add_argument("--timeout", type=float, default=120, help="seconds to wait for storage")
    args = parser.parse_args(argv)
    if args.db.startswith("mysql://"):
        args.db = "mysql+pymysql://" + args.db.removeprefix("mysql://")
    if args.db and not args.db.startswith(("mysql+pymysql://", "sqlite:///")):
        parser.error("--db must be a mysql://, mysql+pymysql:// or sqlite:/// URL")
    return args


def endpoints_table(stack: LocalStack) -> Table:
    table = Table(title="skybridge local stack", show_header=False)
    for name, value in stack.endpoints().items():
        table.add_row(name, value)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skybridge-local-"))
    stack = LocalStack(Options(workdir=workdir, database_url=args.db, pubsub=args.pubsub))
    stopping = threading.Event()

    def stop(signum, _frame) -> None:
        stopping.set()
        if args.command == "demo":
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        with console.status("starting emulators, functions, API and relay…"):
            stack.start()
        console.print(endpoints_table(stack))
        if args.command == "demo":
            from local_stack.demo import demo

            return demo(stack, args.count, args.timeout, console)
        console.print("[bold]running — Ctrl-C stops everything")
        while not stopping.wait(0.5):
            if dead := stack.dead_children():
                console.print(f"[red]{', '.join(dead)} exited; stopping (logs: {stack.logs})")
                return 1
        return 0
    except KeyboardInterrupt:
        return 130
    except RuntimeError as error:
        console.print(f"[red]error: {error}")
        return 1
    finally:
        with console.status("stopping…"):
            stack.stop()
        console.print("stopped; nothing left running")


if __name__ == "__main__":
    sys.exit(main())
