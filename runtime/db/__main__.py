"""`python -m runtime.db migrate`: apply pending migrations to SKYBRIDGE_DATABASE_URL;
`python -m runtime.db purge`: delete what is past retention now (the relay does it too)."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import DBAPIError

from runtime.db.engine import create_db_engine
from runtime.db.migrations import migrate


def main(argv: list[str] | None = None) -> int:
    from runtime.observability import configure_logging
    from runtime.settings import SettingsError, get_settings

    parser = argparse.ArgumentParser(prog="python -m runtime.db")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending migrations")
    purge = sub.add_parser(
        "purge",
        help="delete stored and failed submissions past retention, in batches "
        "(SKYBRIDGE_RETENTION_STORED_DAYS, SKYBRIDGE_RETENTION_FAILED_DAYS)",
    )
    purge.add_argument("--stored-days", type=int, help="instead of SKYBRIDGE_RETENTION_STORED_DAYS")
    purge.add_argument("--failed-days", type=int, help="instead of SKYBRIDGE_RETENTION_FAILED_DAYS")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    source = settings.database_secret_arn or "SKYBRIDGE_DATABASE_URL"
    if args.command == "migrate":
        try:
            applied = migrate(create_db_engine(settings))
        except DBAPIError as error:
            print(
                f"error: cannot migrate the database with the credentials from {source}: "
                f"{error.orig}; check the database is reachable and the secret current",
                file=sys.stderr,
            )
            return 1
        print(f"applied migrations: {applied or 'none (up to date)'}")
    elif args.command == "purge":
        return _purge(args, settings, source)
    return 0


def _purge(args: argparse.Namespace, settings, source: str) -> int:
    from runtime import retention
    from runtime.db.schema import utcnow

    policy = retention.Policy(
        stored_days=settings.retention_stored_days
        if args.stored_days is None
        else args.stored_days,
        failed_days=settings.retention_failed_days
        if args.failed_days is None
        else args.failed_days,
    )
    if policy.stored_days < 0 or policy.failed_days < 0:
        print("error: retention days must be 0 (keep) or more", file=sys.stderr)
        return 2
    if not (policy.stored_days or policy.failed_days):
        print(
            "nothing to purge: retention is 0 (keep forever) for stored and failed "
            "submissions; set SKYBRIDGE_RETENTION_STORED_DAYS / _FAILED_DAYS or pass "
            "--stored-days / --failed-days"
        )
        return 0
    try:
        purged = retention.purge(
            create_db_engine(settings), utcnow(), policy, batch_size=settings.purge_batch_size
        )
    except DBAPIError as error:
        print(
            f"error: cannot purge the database with the credentials from {source}: "
            f"{error.orig}; check the database is reachable and the secret current",
            file=sys.stderr,
        )
        return 1
    print(
        f"purged {purged.stored} stored and {purged.failed} failed submissions "
        f"(retention in days, 0 = keep: stored {policy.stored_days}, "
        f"failed {policy.failed_days})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
