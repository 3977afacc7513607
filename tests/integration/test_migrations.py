"""The migrations build exactly the tables of ``service.store.tables`` on both databases."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.store import migrations
from service.store.tables import metadata, postgresql_metadata


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    models = MetaData()
    tables = [*metadata.tables.values()]
    if engine.dialect.name == "postgresql":
        tables += postgresql_metadata.tables.values()
    for table in tables:
        table.to_metadata(models)

    def differences(connection: object) -> list[object]:
        context = MigrationContext.configure(connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, models))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


def test_a_migrated_sqlite_file_is_left_in_wal_mode(tmp_path: Path) -> None:
    # Switching to WAL takes a lock that does not wait: the processes that open the file next
    # (a server and its relays, starting together) must find it switched already.
    path = tmp_path / "fresh.db"
    migrations.upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
