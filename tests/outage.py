"""A database that cannot take writes for a while, on either backend."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from tests.conftest import admin_execute


@asynccontextmanager
async def unwritable(backend: str, database_url: str) -> AsyncIterator[None]:
    """SQLite: another connection holds the write lock (past the service's busy timeout);
    PostgreSQL: the database takes no connections and its sessions are ended."""
    name = make_url(database_url).database or ""
    if backend == "sqlite":
        holder = sqlite3.connect(name, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    await admin_execute(
        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    try:
        yield
    finally:
        await admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
