"""`python -m runtime.relay [run]` delivers the outbox until SIGTERM;
`python -m runtime.relay replay [ID ...]` re-queues failed submissions."""

from __future__ import annotations

import argparse
import signal
import sys

from runtime.db import create_db_engine, migrate
from runtime.observability import Metrics, configure_logging
from runtime.relay.loop import Relay, replay
from runtime.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.relay", description="Deliver the outbox to GCP's ingest function."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="deliver the outbox until SIGTERM (the default)")
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
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    relay.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
