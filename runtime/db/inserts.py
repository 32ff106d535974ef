"""The API's accept path: INSERTs straight on the driver's connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError

from runtime.db.engine import MULTI_STATEMENTS

NO_BACKSLASH_ESCAPES = 512  # pymysql.constants.SERVER_STATUS (imported only where it is used)


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
    pool (and its ping after idle), and the same SQLAlchemy exceptions: a driver error is
    raised as SQLAlchemy's (IntegrityError, OperationalError, ...) and a disconnect
    invalidates the pool's connections, as Core does. On MySQL (pymysql) the statements and
    the COMMIT go in one round trip. Parameters are processed before the transaction
    starts, so SQLite's write lock is held only for the statements themselves.
    """
    insert_batch(engine, [rows])


def insert_batch(engine: Engine, batch: list[list[tuple[Table, dict[str, Any]]]]) -> None:
    """Several callers' rows in one transaction (runtime.db.group_commit): one multi-row
    INSERT per table and set of columns, in the order they first appear, then the COMMIT;
    otherwise exactly what insert_rows does (insert_rows is a batch of one)."""
    dialect = engine.dialect
    groups: dict[tuple[Any, ...], tuple[_PreparedInsert, list[Any]]] = {}
    for rows in batch:
        for table, values in rows:
            key = (id(dialect), table.name, *values)
            prepared = _prepared.get(key)
            if prepared is None:
                prepared = _prepared[key] = _PreparedInsert(table, tuple(values), dialect)
            groups.setdefault(key, (prepared, []))[1].append(prepared.params(values))
    statements = [(prepared.sql, params) for prepared, params in groups.values()]
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
        if _batchable(connection.dbapi_connection):
            # One round trip instead of one per statement plus the COMMIT's: the server runs
            # them in order and stops at the first error (nothing after it runs, so no
            # COMMIT). Every result is read before returning, the COMMIT's included: a 202
            # still means committed. (The session's autocommit is off: the first INSERT
            # opens the transaction.) pymysql binds values on the client, by `mogrify`,
            # also when it runs one statement: the batch holds the same SQL text.
            bound = connection.dbapi_connection
            sql = ";".join(_multi_row(bound, sql, rows) for sql, rows in statements)
            sql, params = sql + ";COMMIT", None
            cursor.execute(sql)
            while cursor.nextset():
                pass
        else:
            for sql, rows in statements:
                params = rows
                if len(rows) == 1:
                    cursor.execute(sql, rows[0])
                else:
                    cursor.executemany(sql, rows)
            sql, params = "COMMIT", None
            connection.commit()
    except dialect.loaded_dbapi.Error as error:
        disconnected = dialect.is_disconnect(error, connection.dbapi_connection, None)
        if disconnected:
            connection.invalidate(error)
            # As Core does on a disconnect: the server restarted or failed over, so every
            # pooled connection is suspect; the pool starts afresh (those in use are
            # discarded when they come back).
            engine.dispose(close=False)
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


# pymysql.converters' table, applied with str.replace: the body is most of an accept's bytes,
# and str.translate over a list took 6 % of the API's CPU (58 against 9 us per KiB).
_ESCAPES = (("\\", "\\\\"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"), ("\032", "\\Z"),
            ('"', '\\"'), ("'", "\\'"))  # fmt: skip


def escape_string(value: str) -> str:
    """What pymysql.converters.escape_string returns, faster."""
    for char, escaped in _ESCAPES:
        if char in value:
            value = value.replace(char, escaped)
    return value


def _mogrify(dbapi_connection: Any, sql: str, params: Any) -> str:
    """pymysql's `cursor.mogrify(sql, params)`, the same text, with strings escaped by
    escape_string (everything else by the driver's own `escape`)."""
    escape = dbapi_connection.escape
    if dbapi_connection.server_status & NO_BACKSLASH_ESCAPES:
        literal = escape  # the driver's quote doubling
    else:

        def literal(value: Any) -> str:
            return f"'{escape_string(value)}'" if type(value) is str else escape(value)

    if isinstance(params, dict):
        return sql % {key: literal(value) for key, value in params.items()}
    return sql % tuple(literal(value) for value in params)


def _multi_row(dbapi_connection: Any, sql: str, rows: list[Any]) -> str:
    """`INSERT INTO t (a, b) VALUES (1, 2), (3, 4)`: the compiled single-row INSERT with
    its VALUES tuple bound once per row (one row: the statement pymysql would send)."""
    head, values = sql.split(" VALUES ", 1)
    return f"{head} VALUES " + ", ".join(_mogrify(dbapi_connection, values, row) for row in rows)


def _batchable(dbapi_connection: Any) -> bool:
    """Whether statements can go as one batch: the driver's connection was opened with
    CLIENT.MULTI_STATEMENTS (pymysql only, see runtime.db.engine)."""
    return bool(getattr(dbapi_connection, "client_flag", 0) & MULTI_STATEMENTS)


def _rollback_quietly(connection, dialect) -> None:
    try:
        connection.rollback()
    except dialect.loaded_dbapi.Error:
        connection.invalidate()  # a connection that cannot roll back is not reused
