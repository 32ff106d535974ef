"""`python -m runtime.relay [run]` delivers the outbox and consumes receipts until SIGTERM;
`python -m runtime.relay receipts` consumes receipts only;
`python -m runtime.relay replay [ID ...]` re-queues failed submissions."""

from __future__ import annotations

import argparse
import signal
import sys

from sqlalchemy.exc import SQLAlchemyError

from runtime.db import create_db_engine, migrate
from runtime.db.engine import database_name, error_reason
from runtime.observability import Metrics, configure_logging
from runtime.relay.loop import Relay, replay
from runtime.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.relay", description="Deliver the outbox to GCP's ingest function."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser(
        "run", help="deliver the outbox and consume receipts until SIGTERM (the default)"
    )
    sub.add_parser("receipts", help="consume GCP's delivery receipts only, until SIGTERM")
    replay_parser = sub.add_parser("replay", help="re-queue failed submissions")
    replay_parser.add_argument("ids", nargs="*", help="submission ids (default: every failed one)")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        configure_logging(settings.log_level)
        engine = create_db_engine(settings)
        if settings.migrate_on_start:
            migrate(engine)
        if args.command == "replay":
            print(f"re-queued {replay(engine, args.ids)} failed submission(s)")
            return 0
        consumer = None
        if settings.receipts_subscription or args.command == "receipts":
            from runtime.relay.receipts import ReceiptConsumer, subscriber_from_settings

            consumer = ReceiptConsumer(
                engine,
                settings,
                subscriber_from_settings(settings),
                metrics=Metrics(settings.metrics, settings.metrics_namespace, "relay"),
            )
        if args.command == "receipts":
            assert consumer is not None
            signal.signal(signal.SIGTERM, consumer.stop)
            signal.signal(signal.SIGINT, consumer.stop)
            consumer.run()
            return 0
        from runtime.token_sources import token_source_from_settings

        relay = Relay(
            engine,
            settings,
            token_source_from_settings(settings, audience=settings.ingest_url),
            metrics=Metrics(settings.metrics, settings.metrics_namespace, "relay"),
        )
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:  # before the loop, which rides out outages itself
        print(
            f"error: cannot use {database_name(settings)}: {error_reason(error)}; check it "
            "runs, is reachable and migrated (`python -m runtime.db migrate`)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

    def stop(*_: object) -> None:
        relay.stop()
        if consumer is not None:
            consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    thread = consumer.start() if consumer is not None else None
    relay.run()
    if thread is not None:
        thread.join(timeout=settings.receipts_pull_timeout + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
