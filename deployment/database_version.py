"""Which MySQL version the database gets: one answer for the stack and for preflight."""

from __future__ import annotations

from aws_cdk import aws_rds as rds


def newest_mysql_84() -> str:
    """The newest MySQL 8.4 minor this aws-cdk-lib knows: the default, since RDS removes old
    minors from what it will create (a pinned minor eventually fails to deploy); an
    environment can pin another (`aws.db_engine_version`), and preflight checks that the
    region still offers it."""
    known = [
        getattr(rds.MysqlEngineVersion, name).mysql_full_version
        for name in dir(rds.MysqlEngineVersion)
        if name.startswith("VER_8_4_")
    ]
    return max(known, key=lambda version: tuple(int(part) for part in version.split(".")))


def engine_version(configured: str) -> str:
    return configured or newest_mysql_84()
