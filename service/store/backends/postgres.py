"""The PostgreSQL backend: asyncpg through SQLAlchemy's pool, every table in the schema
``DATABASE_SCHEMA`` named in every statement, ``FOR UPDATE SKIP LOCKED``, arrays for batches,
and ``NOTIFY``/``LISTEN`` to wake a waiting relay at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, BigInteger, ColumnElement, Select, Table, any_, literal
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from service.config import Settings
from service.events.payload import EventShell, NewEvent
from service.store.backends.base import BACKEND_OPTION, Listener, upsert_statement
from service.store.backends.postgres_batch import PostgresBatchStore
from service.store.backends.postgres_listen import PostgresListener
from service.store.backends.postgres_sql import (
    PostgresStatements,
    asyncpg_dsn,
    insert_arguments,
    quoted,
)
from service.store.backends.rows import new_complete_events
from service.store.batch import BatchStore
from service.store.tables import outbox_intake

__all__ = ["PostgresBackend"]

log = logging.getLogger(__name__)


class PostgresBackend:
    """PostgreSQL, the backend for more than one host."""

    name = "postgresql"
    migrates_by_copy = False
    intake: Table | None = outbox_intake

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schema: str | None = settings.database_schema
        self.sql = PostgresStatements.of(settings.database_schema)

    def create_engine(self) -> AsyncEngine:
        s = self.settings
        return create_async_engine(
            s.database_url,
            pool_size=s.db_pool_size,
            max_overflow=s.db_pool_size,
            pool_pre_ping=True,
            pool_timeout=10,
            connect_args={"timeout": 5, "command_timeout": 30},
            # SQLAlchemy Core writes the schema into every statement it renders.
            execution_options={
                BACKEND_OPTION: self,
                "schema_translate_map": {None: s.database_schema},
            },
        )

    def missing(self) -> str | None:
        return None  # only a connection can tell

    def before_upgrade(self) -> None:
        pass

    def migration_preamble(self) -> list[str]:
        # The migrations name no schema: within their transaction, the service's is the only
        # one searched (the version table is named with it explicitly).
        schema = quoted(self.sql.schema)
        return [f"CREATE SCHEMA IF NOT EXISTS {schema}", f"SET LOCAL search_path TO {schema}"]

    def migration_epilogue(self) -> list[str]:
        return [self.sql.set_event_max_bytes(self.settings.event_api.max_event_bytes)]

    def after_upgrade(self) -> None:
        pass

    async def single_statement(self, conn: AsyncConnection) -> AsyncConnection:
        # No BEGIN and COMMIT around the statement: two round trips saved.
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def insert(
        self, conn: AsyncConnection, shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> int:
        if not shells and not events:
            return 0
        result = await conn.exec_driver_sql(
            self.sql.insert, tuple(insert_arguments(shells, events))
        )
        return new_complete_events(shells, result.one()[0])

    async def take_in(self, conn: AsyncConnection, limit: int) -> int:
        result = await conn.exec_driver_sql(self.sql.take_in, (limit,))
        return int(result.scalar_one())

    def seq_in(self, column: ColumnElement[int], seqs: Sequence[int]) -> ColumnElement[bool]:
        # One array parameter (``= ANY``) instead of one parameter per row: a statement of the
        # same shape (and one prepare) whatever the batch's size.
        return column == any_(literal(list(seqs), ARRAY(BigInteger)))

    def locked(self, statement: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
        return statement.with_for_update(skip_locked=skip_locked)

    def upsert(self, table: Table, row: Mapping[str, Any], key: str) -> Insert:
        return upsert_statement(postgres_insert, table, row, key)

    async def notify(self, conn: AsyncConnection) -> None:
        await conn.exec_driver_sql(self.sql.notify)

    @contextlib.asynccontextmanager
    async def listen(self, wake: asyncio.Event) -> AsyncIterator[Listener]:
        dsn = asyncpg_dsn(self.settings)
        listener = PostgresListener(dsn, self.sql, wake, self.settings.relay.poll_interval * 5)
        task = asyncio.create_task(listener.run(), name="relay-listen")
        try:
            yield listener
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def grant_sender(self, role: str) -> list[str]:
        return self.sql.grant_sender(role)

    def open_batch_store(self) -> BatchStore:
        return PostgresBatchStore(asyncpg_dsn(self.settings), self.sql)
