"""Engines and connections: an engine for the settings' database (its backend makes it), the
three ways the store uses a connection (a write transaction, a single statement, a read), and
the translation of driver errors into domain errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.errors import DatabaseUnavailable
from service.store.backend import backend_for, backend_of
from service.store.backends.base import READ_ONLY
from service.store.connect_errors import connection_problem, is_misconfiguration

__all__ = [
    "UNAVAILABLE",
    "create_engine",
    "describe_db_error",
    "reading",
    "single_statement",
    "transaction",
    "unavailable",
]

# Every driver failure of a write means the same to a caller: it did not happen; retry later.
UNAVAILABLE = (exc.DBAPIError, exc.TimeoutError, OSError)


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for ``settings.database_url``, set up by its backend."""
    return backend_for(settings).create_engine()


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction; database failures surface as ``DatabaseUnavailable``."""
    try:
        async with engine.begin() as conn:
            yield conn
    except UNAVAILABLE as error:
        raise unavailable(error) from error


@contextlib.asynccontextmanager
async def single_statement(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose one write statement is a transaction of its own: no BEGIN, no COMMIT
    (the backend says how). SQLAlchemy's rollback when the block ends finds nothing to undo.
    Where a lone statement cannot commit by itself, a transaction of its own."""
    backend = backend_of(engine)
    if not backend.lone_statements_commit:
        async with transaction(engine) as conn:
            yield conn
        return
    try:
        async with engine.connect() as conn:
            yield await backend.single_statement(conn)
    except UNAVAILABLE as error:
        raise unavailable(error) from error


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection; on SQLite it does not take the write lock."""
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**READ_ONLY)
            yield conn
    except UNAVAILABLE as error:
        raise unavailable(error) from error


def unavailable(error: BaseException) -> DatabaseUnavailable:
    """The domain error of a driver's failure: its reason in one line, and whether the
    connection's settings are at fault."""
    return DatabaseUnavailable(describe_db_error(error), misconfigured=is_misconfiguration(error))


def describe_db_error(error: BaseException) -> str:
    """A one-line reason without SQL text or parameters (they may hold user data)."""
    problem = connection_problem(error)
    if problem is not None:
        return problem
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        # asyncpg's errors arrive wrapped in the dialect's adapter class; name the driver's own.
        cause = error.orig.__cause__ if error.orig.__cause__ is not None else error.orig
        lines = str(cause).splitlines() or [""]
        return f"{type(cause).__name__}: {lines[0]}"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
