"""The PostgreSQL backend: asyncpg through SQLAlchemy's pool, ``FOR UPDATE SKIP LOCKED``,
arrays for batches, and ``NOTIFY``/``LISTEN`` to wake relays at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, BigInteger, ColumnElement, Select, Table, any_, literal
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from service.config import Settings
from service.events.payload import EventShell, NewEvent
from service.store.backends.base import BACKEND_OPTION, upsert_statement
from service.store.backends.postgres_batch import PostgresBatchStore
from service.store.backends.postgres_sql import (
    INSERT,
    NOTIFY,
    NOTIFY_CHANNEL,
    asyncpg_dsn,
    insert_arguments,
)
from service.store.backends.rows import new_complete_events
from service.store.batch import BatchStore

__all__ = ["PostgresBackend"]

log = logging.getLogger(__name__)


class PostgresBackend:
    """PostgreSQL, the backend for more than one host."""

    name = "postgresql"
    migrates_by_copy = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def create_engine(self) -> AsyncEngine:
        s = self.settings
        return create_async_engine(
            s.database_url,
            pool_size=s.db_pool_size,
            max_overflow=s.db_pool_size,
            pool_pre_ping=True,
            pool_timeout=10,
            connect_args={"timeout": 5, "command_timeout": 30},
            execution_options={BACKEND_OPTION: self},
        )

    def missing(self) -> str | None:
        return None  # only a connection can tell

    def before_upgrade(self) -> None:
        pass

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
        result = await conn.exec_driver_sql(INSERT, tuple(insert_arguments(shells, events)))
        return new_complete_events(shells, result.one()[0])

    def seq_in(self, column: ColumnElement[int], seqs: Sequence[int]) -> ColumnElement[bool]:
        # One array parameter (``= ANY``) instead of one parameter per row: a statement of the
        # same shape (and one prepare) whatever the batch's size.
        return column == any_(literal(list(seqs), ARRAY(BigInteger)))

    def locked(self, statement: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
        return statement.with_for_update(skip_locked=skip_locked)

    def upsert(self, table: Table, row: Mapping[str, Any], key: str) -> Insert:
        return upsert_statement(postgres_insert, table, row, key)

    async def notify(self, conn: AsyncConnection) -> None:
        await conn.exec_driver_sql(NOTIFY)

    @contextlib.asynccontextmanager
    async def listen(self, wake: asyncio.Event) -> AsyncIterator[None]:
        task = asyncio.create_task(self._listen_forever(wake), name="relay-listen")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _listen_forever(self, wake: asyncio.Event) -> None:
        """Keep a LISTEN connection open, reconnecting after a loss; polling covers the gaps."""
        dsn = asyncpg_dsn(self.settings)
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning(
                    "LISTEN connection failed: %s", exc, extra={"action": "relay.listen_failed"}
                )
                await asyncio.sleep(self.settings.relay.poll_interval * 5)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _conn, ended=lost: ended.set())
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_args: wake.set())
                wake.set()  # rows may have arrived while nobody listened
                await lost.wait()
                log.warning("LISTEN connection lost", extra={"action": "relay.listen_lost"})
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    def open_batch_store(self) -> BatchStore:
        return PostgresBatchStore(asyncpg_dsn(self.settings))
