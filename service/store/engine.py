"""Engines and connections: an engine for the settings' database (its backend makes it), and
the three ways the store uses a connection (a write transaction, a single statement, a read),
each raising ``DatabaseUnavailable`` when the database fails."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.store.backend import backend_for, backend_of
from service.store.backends.base import READ_ONLY
from service.store.db_errors import UNAVAILABLE, unavailable

__all__ = ["create_engine", "reading", "single_statement", "transaction"]


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
