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
from rich.text import Text

import environments
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
    up = sub.add_parser("up", help="start everything and wait for Ctrl-C")
    up.add_argument("--watch", action="store_true", help="show the live view while running")
    demo = sub.add_parser("demo", help="the story in acts: traffic, GCP away and back, verified")
    demo.add_argument("--rate", type=float, default=20, help="submissions a second (default 20)")
    demo.add_argument("--outage", type=float, default=15, help="seconds GCP is away (default 15)")
    demo.add_argument("--timeout", type=float, default=120, help="seconds to wait for storage")
    for command in (up, demo):
        command.add_argument(
            "--no-aws-alarms",
            dest="aws_alarms",
            action="store_false",
            help="evaluate GCP's alert policies only (skips the CDK synth, which needs Node)",
        )
    args = parser.parse_args(argv)
    if args.db.startswith("mysql://"):
        args.db = "mysql+pymysql://" + args.db.removeprefix("mysql://")
    if args.db and not args.db.startswith(("mysql+pymysql://", "sqlite:///")):
        parser.error("--db must be a mysql://, mysql+pymysql:// or sqlite:/// URL")
    if args.command == "demo" and (args.rate <= 0 or args.outage <= 0):
        parser.error("--rate and --outage must be positive numbers")
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
    # Named like the dev environment, so its monitoring's name filters select the same
    # things; the relay keeps what dev keeps.
    dev = environments.load("dev")
    # The live view judges alarms in compressed time: the RDS stand-in's minute is too.
    minute = 60.0
    if args.command == "demo" or getattr(args, "watch", False):
        from local_stack.demo import SCALE

        minute /= SCALE
    options = Options(workdir=workdir, database_url=args.db, pubsub=args.pubsub,
                      prefix=dev.prefix, retention_stored_days=dev.retention.stored_days,
                      retention_failed_days=dev.retention.failed_days,
                      db_allocated_bytes=dev.aws.db_allocated_storage_gib * 1024**3,
                      rds_period=minute)  # fmt: skip
    stack = LocalStack(options)
    stopping = threading.Event()
    interrupted = False

    def terminate(_signum, _frame) -> None:
        stopping.set()
        if args.command == "demo":
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)  # `up` stops cleanly and exits 0
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: 130, anywhere
    try:
        with console.status("starting emulators, functions, API and relay…"):
            stack.start()
        console.print(endpoints_table(stack))
        if args.command == "demo":
            from local_stack.demo import demo

            return demo(stack, console, rate=args.rate, outage=args.outage,
                        timeout=args.timeout, aws_alarms=args.aws_alarms)  # fmt: skip
        console.print("[bold]running — Ctrl-C stops everything")
        if args.watch:
            from local_stack.demo import watch

            return watch(stack, console, stopping, args.aws_alarms)
        while not stopping.wait(0.5):
            if dead := stack.dead_children():
                console.print(
                    Text(f"{', '.join(dead)} exited; stopping (logs: {stack.logs})", style="red")
                )
                return 1
        return 0
    except KeyboardInterrupt:
        interrupted = True
        return 130
    except RuntimeError as error:
        # Text, not markup (the reason may hold brackets); one line, however wide.
        console.print(Text.assemble(("error: ", "red"), str(error)), soft_wrap=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with console.status("stopping…"):
            stack.stop()
        console.print("interrupted: " * interrupted + "stopped; nothing left running")


if __name__ == "__main__":
    sys.exit(main())
