"""The SQLite backend: the default, embedded in the service's processes.

One writer at a time is SQLite's rule: write transactions are ``BEGIN IMMEDIATE`` (the write
lock taken at once, which gives a claim the exclusivity PostgreSQL's row locks give) unless a
connection asks for a read-only one, and waits for the lock are bounded by
``SQLITE_BUSY_TIMEOUT_MS``. Relays find new rows by polling: SQLite cannot tell another
process that rows were committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Row, Table, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from service.config import Settings
from service.config.settings import configured_event_max_bytes
from service.errors import InvalidInput
from service.events.inngest_ids import RunningIds
from service.events.payload import EventShell, NewEvent, dumps
from service.store.backends.base import (
    BACKEND_OPTION,
    POLLING,
    AppEvent,
    Listener,
)
from service.store.backends.rows import new_complete_events
from service.store.backends.sqlite_batch import SqliteBatchStore
from service.store.backends.sqlite_sql import SQL, apply_pragmas, file_identity, insert_argument
from service.store.batch_writes import BatchStore
from service.store.outcomes import Burial, Retry

__all__ = ["APP_WRITES", "SqliteBackend", "sqlite_path"]

# Where a connection keeps the run of Inngest ids of the events ``send_event`` wrote on it.
RUNS = "service.inngest_ids"
# A connection whose one write statement is a transaction of its own (the driver's autocommit).
SINGLE_STATEMENT = {"service_single_statement": True}


def sqlite_path(database_url: str) -> str:
    """The file of a SQLite database URL."""
    return make_url(database_url).database or ""


class SqliteAppWrites:
    """``send_event`` on SQLite, which has no stored functions: the backend's INSERT, in the
    app's transaction on the same file."""

    def inngest_id(self, conn: AsyncConnection, written_at: int) -> str:
        # The events of one connection make runs (its pool keeps it for the next transactions).
        runs: RunningIds = conn.info.setdefault(RUNS, RunningIds())
        return runs.take(1, written_at)[0]

    async def size_limit(self, conn: AsyncConnection, schema: str) -> int:
        return configured_event_max_bytes()  # what the service's Event API takes

    async def write(self, conn: AsyncConnection, event: AppEvent) -> str:
        event_id = str(event.document["id"])
        row = NewEvent(
            event_id,
            str(event.document["name"]),
            event.written_at,
            event.payload,
            env=event.env,
            inngest_id=event.inngest_id,
        )
        await conn.exec_driver_sql(SQL["insert_events"], insert_argument([], [row]))
        return event_id


APP_WRITES = SqliteAppWrites()


class SqliteBackend:
    """A SQLite file shared by the processes of one host."""

    name = "sqlite"
    migrates_by_copy = True  # SQLite alters a table by copying it
    intake: Table | None = None  # one writer at a time: apps write the outbox itself

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = sqlite_path(settings.database_url)
        self.schema: str | None = None  # a file has one

    def create_engine(self) -> AsyncEngine:
        s = self.settings
        engine = create_async_engine(
            s.database_url,
            pool_size=s.db_pool_size,
            max_overflow=0,
            pool_timeout=30,
            execution_options={BACKEND_OPTION: self},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            # The driver's own transaction handling is off: the "begin" hook below decides.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            apply_pragmas(cursor, s.sqlite_busy_timeout_ms, s.sqlite_synchronous)
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY
            # when another writer got in between, without waiting for busy_timeout.
            options = connection.get_execution_options()
            if options.get("service_single_statement", False):
                return  # the driver's autocommit (see ``single_statement``)
            read_only = options.get("service_read_only", False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine

    def migration_engine(self) -> AsyncEngine:
        return create_async_engine(self.settings.database_url, poolclass=NullPool)

    def missing(self) -> str | None:
        if self.path and self.path != ":memory:" and file_identity(self.path) is None:
            where = os.path.abspath(self.path)
            return (
                f"no database at {where} (DATABASE_URL; a relative path starts in the current"
                " directory): run `service db upgrade` to make it, or point DATABASE_URL at it"
            )
        return None

    def migration_preamble(self) -> list[str]:
        return []  # one file, one schema

    def migration_epilogue(self) -> list[str]:
        return []  # no stored functions

    def before_upgrade(self) -> None:
        if self.path and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    def after_upgrade(self) -> None:
        # WAL is a property of the file. Switching it takes an exclusive lock that does not
        # wait, so the processes that open the file next (a server, relays) must not race to.
        if self.path and self.path != ":memory:":
            with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")

    lone_statements_commit = True

    async def single_statement(self, conn: AsyncConnection) -> AsyncConnection:
        # The write lock is then held only while the statement runs in the driver's thread, not
        # across the trips back through the event loop that BEGIN, the statement and COMMIT
        # take in turn, while every other writer (the group commit's process) waits.
        return await conn.execution_options(**SINGLE_STATEMENT)

    async def insert(
        self, conn: AsyncConnection, shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> int:
        if not shells and not events:
            return 0
        result = await conn.exec_driver_sql(SQL["insert_events"], insert_argument(shells, events))
        return new_complete_events(shells, list(result.scalars()))

    async def take_in(self, conn: AsyncConnection, limit: int) -> int:
        return 0

    async def claim(
        self, conn: AsyncConnection, relay_id: str, limit: int, until: int, now: int, *, early: bool
    ) -> Sequence[Row[Any]]:
        parameters = {"relay": relay_id, "limit": limit, "until": until, "now": now}
        statement = SQL["claim_early" if early else "claim_due"]
        return (await conn.exec_driver_sql(statement, parameters)).all()

    async def mark_delivered(self, conn: AsyncConnection, seqs: Sequence[int], now: int) -> None:
        await conn.exec_driver_sql(SQL["mark_delivered"], {"seqs": dumps(list(seqs)), "now": now})

    async def retry_later(
        self, conn: AsyncConnection, relay_id: str, retries: Sequence[Retry], now: int
    ) -> None:
        rows = dumps([{"seq": r.seq, "at": r.at, "error": r.error} for r in retries])
        await conn.exec_driver_sql(
            SQL["retry_later"], {"retries": rows, "now": now, "relay": relay_id}
        )

    async def bury(
        self, conn: AsyncConnection, relay_id: str, burials: Sequence[Burial], now: int
    ) -> None:
        rows = dumps([{"seq": b.seq, "error": b.error} for b in burials])
        await conn.exec_driver_sql(SQL["bury"], {"burials": rows, "now": now, "relay": relay_id})

    async def release(
        self, conn: AsyncConnection, relay_id: str, seqs: Sequence[int], until: int
    ) -> None:
        parameters = {"seqs": dumps(list(seqs)), "until": until, "relay": relay_id}
        await conn.exec_driver_sql(SQL["release"], parameters)

    async def save_settings(self, conn: AsyncConnection, document: str, now: int) -> None:
        await conn.exec_driver_sql(SQL["save_settings"], {"document": document, "now": now})

    async def notify(self, conn: AsyncConnection) -> None:
        pass  # relays on SQLite find new rows at their next poll

    @contextlib.asynccontextmanager
    async def listen(self, wake: asyncio.Event) -> AsyncIterator[Listener]:
        yield POLLING  # SQLite cannot tell another process of a commit: relays poll

    def grant_sender(self, role: str) -> list[str]:
        raise InvalidInput(
            "SQLite has no roles: an app that shares the file writes events with the Python "
            "helper (from service import send_event)"
        )

    def open_batch_store(self) -> BatchStore:
        return SqliteBatchStore(self.settings, self.path)
