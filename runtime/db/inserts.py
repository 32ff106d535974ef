"""The API's accept path: INSERTs straight on the driver's connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError


class _PreparedInsert:
    """One table's INSERT for one set of columns, compiled once per dialect, with the
    columns' own bind processing (so values are stored exactly as Core stores them)."""

    def __init__(self, table: Table, columns: tuple[str, ...], dialect) -> None:
        compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        self.positional = compiled.positiontup is not None
        self.processors = [
            (key, table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
            for key in (compiled.positiontup or compiled.binds)
        ]

    def params(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        processed = [
            (key, process(values[key]) if process else values[key])
            for key, process in self.processors
        ]
        return tuple(v for _, v in processed) if self.positional else dict(processed)


_prepared: dict[tuple[Any, ...], _PreparedInsert] = {}


def insert_rows(engine: Engine, rows: list[tuple[Table, dict[str, Any]]]) -> None:
    """INSERT the rows in one transaction, straight on the driver's connection.

    The API's accept path is this and little else. Through `engine.begin()` and Core, the
    bookkeeping (connection and transaction objects, events, execution contexts) cost more
    CPU than the database spent on the inserts. Same SQL, same bind processing, the same
    pool (pre-ping included), and the same SQLAlchemy exceptions: a driver error is raised
    as SQLAlchemy's (IntegrityError, OperationalError, ...) and a disconnect invalidates the
    connection. Parameters are processed before the transaction starts, so SQLite's write
    lock is held only for the statements themselves.
    """
    dialect = engine.dialect
    statements = []
    for table, values in rows:
        key = (id(dialect), table.name, *values)
        prepared = _prepared.get(key)
        if prepared is None:
            prepared = _prepared[key] = _PreparedInsert(table, tuple(values), dialect)
        statements.append((prepared.sql, prepared.params(values)))
    try:
        connection = engine.raw_connection()
    except dialect.loaded_dbapi.Error as error:  # the pool hands out the driver's error
        raise DBAPIError.instance(
            None, None, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error
    sql, params = "BEGIN", None
    try:
        cursor = connection.cursor()
        if dialect.name == "sqlite":
            # What the engine's "begin" hook does for Core transactions (see _sqlite_engine).
            cursor.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            cursor.execute(sql, params)
        sql, params = "COMMIT", None
        connection.commit()
    except dialect.loaded_dbapi.Error as error:
        disconnected = dialect.is_disconnect(error, connection.dbapi_connection, None)
        if disconnected:
            connection.invalidate(error)
        else:
            _rollback_quietly(connection, dialect)
        raise DBAPIError.instance(
            sql,
            params,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=disconnected,
            dialect=dialect,
        ) from error
    except BaseException:
        _rollback_quietly(connection, dialect)
        raise
    finally:
        connection.close()  # back to the pool (or discarded, if invalidated)


def _rollback_quietly(connection, dialect) -> None:
    try:
        connection.rollback()
    except dialect.loaded_dbapi.Error:
        connection.invalidate()  # a connection that cannot roll back is not reused
