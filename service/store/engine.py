"""Engine factory, SQLite pragmas and the translation of driver errors into domain errors."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from service.config import Settings
from service.errors import DatabaseUnavailable

# SQLite transactions are BEGIN IMMEDIATE unless a connection asks for a read-only one:
# a deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
# another writer got in between, without waiting for busy_timeout.
READ_ONLY = {"service_read_only": True}
SINGLE_STATEMENT = {"service_single_statement": True}


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for ``settings.database_url``; creates the SQLite file's folder."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, url.database)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


def apply_sqlite_pragmas(cursor: Any, busy_timeout_ms: int, synchronous: str) -> None:
    """Set up a new SQLite connection (a DB-API cursor of it): waits, WAL, durability, keys."""
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    # WAL is a property of the file, set by the first connection. Asking to switch a file that
    # already is in WAL can fail at once with "database is locked" while another connection
    # opens it, without waiting for busy_timeout: ask only when the file is not in WAL yet.
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")


def _sqlite_engine(settings: Settings, database: str | None) -> AsyncEngine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=30,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # The driver's own transaction handling is off: the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        apply_sqlite_pragmas(cursor, settings.sqlite_busy_timeout_ms, settings.sqlite_synchronous)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get("service_single_statement", False):
            return  # the driver's autocommit (see ``single_statement``)
        read_only = options.get("service_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def asyncpg_dsn(settings: Settings) -> str:
    """``DATABASE_URL`` as asyncpg's own connections (group commit, LISTEN) want it."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def sqlite_file_identity(path: str) -> tuple[int, int] | None:
    """A file's (device, inode), or None when it does not exist."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def sqlite_path(settings: Settings) -> str:
    """The file of a SQLite ``DATABASE_URL``."""
    return make_url(settings.database_url).database or ""


# Every driver failure of a write means the same to a caller: it did not happen; retry later.
UNAVAILABLE = (exc.DBAPIError, exc.TimeoutError, OSError)


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction; database failures surface as ``DatabaseUnavailable``."""
    try:
        async with engine.begin() as conn:
            yield conn
    except UNAVAILABLE as error:
        raise DatabaseUnavailable(describe_db_error(error)) from error


@contextlib.asynccontextmanager
async def single_statement(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose one write statement is a transaction of its own: no BEGIN, no COMMIT.

    On SQLite the write lock is then held only while the statement runs in the driver's thread,
    not across the trips back through the event loop that BEGIN, the statement and COMMIT take
    in turn, while every other writer (the group commit's process) waits. SQLAlchemy's
    rollback when the block ends finds nothing to undo. PostgreSQL saves two round trips.
    """
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn = await conn.execution_options(**SINGLE_STATEMENT)
            else:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
    except UNAVAILABLE as error:
        raise DatabaseUnavailable(describe_db_error(error)) from error


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection; on SQLite it does not take the write lock."""
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**READ_ONLY)
            yield conn
    except UNAVAILABLE as error:
        raise DatabaseUnavailable(describe_db_error(error)) from error


def describe_db_error(error: BaseException) -> str:
    """A one-line reason without SQL text or parameters (they may hold user data)."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        # asyncpg's errors arrive wrapped in the dialect's adapter class; name the driver's own.
        cause = error.orig.__cause__ if error.orig.__cause__ is not None else error.orig
        lines = str(cause).splitlines() or [""]
        return f"{type(cause).__name__}: {lines[0]}"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def now_ms() -> int:
    """Milliseconds since the epoch: the unit of every time column and of the event's ts."""
    return time.time_ns() // 1_000_000
