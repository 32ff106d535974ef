"""`python -m runtime.db migrate`: apply pending migrations to SKYBRIDGE_DATABASE_URL.

Exit codes: 0 migrated (or up to date), 1 the database could not be reached or migrated,
2 a setting is wrong. Each failure is one sentence naming the database and what to do.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from runtime.db.engine import create_db_engine, database_name, error_reason
from runtime.db.migrations import MigrationLockTimeout, migrate


def main(argv: list[str] | None = None) -> int:
    from runtime.observability import configure_logging
    from runtime.settings import SettingsError, get_settings

    parser = argparse.ArgumentParser(prog="python -m runtime.db")
    parser.add_argument("command", choices=["migrate"], help="apply pending migrations")
    parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    database = database_name(settings)
    try:
        engine = create_db_engine(settings)
    except (ArgumentError, NoSuchModuleError) as error:
        print(
            f"error: SKYBRIDGE_DATABASE_URL {database} is not a database URL skybridge can use "
            f"({error}): use mysql+pymysql://USER@HOST:PORT/NAME or sqlite:///PATH",
            file=sys.stderr,
        )
        return 2
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        print(
            f"error: cannot connect to {database}: {error_reason(error)}; check the server runs, "
            "the address and port are right and the credentials current",
            file=sys.stderr,
        )
        return 1
    try:
        applied = migrate(engine)
    except SQLAlchemyError as error:
        print(
            f"error: connected to {database} but cannot migrate it: {error_reason(error)}; "
            "check the user may create and alter tables there, and that nothing else uses "
            "skybridge's table names",
            file=sys.stderr,
        )
        return 1
    except MigrationLockTimeout as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
