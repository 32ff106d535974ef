"""`python -m runtime.db migrate`: apply pending migrations to SKYBRIDGE_DATABASE_URL."""

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
    parser.add_argument("command", choices=["migrate"], help="apply pending migrations")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "migrate":
        try:
            applied = migrate(create_db_engine(settings))
        except DBAPIError as error:
            source = settings.database_secret_arn or "SKYBRIDGE_DATABASE_URL"
            print(
                f"error: cannot migrate the database with the credentials from {source}: "
                f"{error.orig}; check the database is reachable and the secret current",
                file=sys.stderr,
            )
            return 1
        print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
