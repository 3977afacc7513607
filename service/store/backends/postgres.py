"""The PostgreSQL backend: asyncpg through SQLAlchemy's pool, every table in the schema
``DATABASE_SCHEMA`` named in every statement, ``FOR UPDATE SKIP LOCKED``, arrays for batches,
and ``NOTIFY``/``LISTEN`` to wake a waiting relay at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Row, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from service.config import Settings
from service.events.payload import EventShell, NewEvent, dumps
from service.events.validation import EventRefused
from service.store.backends.base import (
    BACKEND_OPTION,
    POLLING,
    AppEvent,
    Listener,
)
from service.store.backends.postgres_batch import PostgresBatchStore
from service.store.backends.postgres_connect import pool_connect_args
from service.store.backends.postgres_listen import PostgresListener
from service.store.backends.postgres_sql import PostgresStatements, quoted
from service.store.backends.rows import as_arrays, insert_rows, new_complete_events
from service.store.batch_writes import BatchStore
from service.store.outcomes import Burial, Retry
from service.store.tables import outbox_intake

__all__ = ["APP_WRITES", "PostgresBackend"]

log = logging.getLogger(__name__)

WRITERS_BEHIND_POOLER = 3
# The function makes the Inngest id: the event is checked first with a stand-in of its length.
PLACEHOLDER_ID = "0" * 26
# Where a connection keeps the size limit of each schema's send_event, once asked.
SIZE_LIMITS = "service.event_max_bytes"
# What send_event raises for an event it refuses.
INVALID_PARAMETER_VALUE = "22023"


class PostgresAppWrites:
    """``send_event`` on PostgreSQL: a call of the schema's function, which makes the id and
    wakes a waiting relay."""

    def inngest_id(self, conn: AsyncConnection, written_at: int) -> str:
        return PLACEHOLDER_ID

    async def write(self, conn: AsyncConnection, event: AppEvent) -> str:
        """Without an id of its own, the event's id is the Inngest id the function makes.

        The function measures the event as it stores it, its data written out as ``jsonb``
        does (a space after each ``:`` and ``,``, at most twice the compact size the Python
        rules measured): an event that could be over the limit so is sent inside a savepoint,
        so that the function's refusal is an ``EventRefused`` and the app's transaction goes
        on."""
        document, user = event.document, event.document.get("user")
        arguments = (
            document["name"],
            dumps(document["data"]),
            None if user is None else dumps(user),
            event.own_id,
            document["ts"],
            event.env,
        )
        sql = PostgresStatements.of(event.schema)
        large = 2 * len(event.payload.encode()) > event.size_limit
        try:
            async with conn.begin_nested() if large else contextlib.nullcontext():
                result = await conn.exec_driver_sql(sql.send_event, arguments)
        except DBAPIError as error:
            if large and getattr(error.orig, "sqlstate", None) == INVALID_PARAMETER_VALUE:
                raise EventRefused(str(getattr(error.orig, "args", [error])[0])) from error
            raise
        return str(result.scalar_one())

    async def size_limit(self, conn: AsyncConnection, schema: str) -> int:
        """The function's own limit (``service db upgrade`` sets it from ``EVENT_MAX_BYTES``),
        asked once per connection and schema."""
        limits: dict[str, int] = conn.info.setdefault(SIZE_LIMITS, {})
        if schema not in limits:
            sql = PostgresStatements.of(schema)
            limits[schema] = int((await conn.exec_driver_sql(sql.size_limit)).scalar_one())
        return limits[schema]


APP_WRITES = PostgresAppWrites()


class PostgresBackend:
    """PostgreSQL, the backend for more than one host."""

    name = "postgresql"
    migrates_by_copy = False
    intake: Table | None = outbox_intake
    _said_polling = False  # once a process: every relay worker asks

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schema: str | None = settings.database_schema
        self.sql = PostgresStatements.of(settings.database_schema)

    def create_engine(self) -> AsyncEngine:
        s = self.settings
        pool_size, overflow = self._pool_bounds()
        return create_async_engine(
            "postgresql+asyncpg://",  # the connections are made from the URL (connect_args)
            pool_size=pool_size,
            max_overflow=overflow,
            pool_pre_ping=True,
            pool_timeout=s.postgres.pool_timeout or 10,
            connect_args=pool_connect_args(s.postgres),
            # SQLAlchemy Core writes the schema into every statement it renders.
            execution_options={
                BACKEND_OPTION: self,
                "schema_translate_map": {None: s.database_schema},
            },
        )

    def _pool_bounds(self) -> tuple[int, int]:
        """The pool's size and how many more it may open at peaks.

        Prisma's ``connection_limit`` bounds every connection a process opens with
        ``DATABASE_URL``: the group commit's own connections, and the relay's listening one
        when no other URL is given for it, come out of it (the pool keeps at least one).
        Without it, ``DB_POOL_SIZE`` connections and as many again at peaks.
        """
        s = self.settings
        limit = s.postgres.connection_limit
        if limit is None:
            return s.db_pool_size, s.db_pool_size
        listens_here = not s.database_direct_url and not s.postgres.pgbouncer
        return max(1, limit - self.batch_writers - int(listens_here)), 0

    def migration_engine(self) -> AsyncEngine:
        # Migrations need no session state today, but alembic's scripts may: they take the
        # direct URL, as Prisma's migrate does.
        url = self.settings.postgres_direct or self.settings.postgres
        return create_async_engine(
            "postgresql+asyncpg://", poolclass=NullPool, connect_args=pool_connect_args(url)
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

    @property
    def lone_statements_commit(self) -> bool:
        # A transaction pooler may hand a statement's prepare and its execution to two
        # server connections unless a transaction holds one for both.
        return not self.settings.postgres.pgbouncer

    async def single_statement(self, conn: AsyncConnection) -> AsyncConnection:
        # No BEGIN and COMMIT around the statement: two round trips saved.
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def insert(
        self, conn: AsyncConnection, shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> int:
        if not shells and not events:
            return 0
        rows = as_arrays(insert_rows(shells, events))
        result = await conn.exec_driver_sql(self.sql.insert_events, tuple(rows))
        return new_complete_events(shells, result.one()[0])

    async def take_in(self, conn: AsyncConnection, limit: int) -> int:
        result = await conn.exec_driver_sql(self.sql.take_in, (limit,))
        return int(result.scalar_one())

    async def claim(
        self, conn: AsyncConnection, relay_id: str, limit: int, until: int, now: int, *, early: bool
    ) -> Sequence[Row[Any]]:
        statement = self.sql.claim_early if early else self.sql.claim_due
        return (await conn.exec_driver_sql(statement, (relay_id, limit, until, now))).all()

    async def mark_delivered(self, conn: AsyncConnection, seqs: Sequence[int], now: int) -> None:
        await conn.exec_driver_sql(self.sql.mark_delivered, (list(seqs), now))

    async def retry_later(
        self, conn: AsyncConnection, relay_id: str, retries: Sequence[Retry], now: int
    ) -> None:
        columns = ([r.seq for r in retries], [r.at for r in retries], [r.error for r in retries])
        await conn.exec_driver_sql(self.sql.retry_later, (*columns, now, relay_id))

    async def bury(
        self, conn: AsyncConnection, relay_id: str, burials: Sequence[Burial], now: int
    ) -> None:
        columns = ([b.seq for b in burials], [b.error for b in burials])
        await conn.exec_driver_sql(self.sql.bury, (*columns, now, relay_id))

    async def release(
        self, conn: AsyncConnection, relay_id: str, seqs: Sequence[int], until: int
    ) -> None:
        await conn.exec_driver_sql(self.sql.release, (list(seqs), until, relay_id))

    async def save_settings(self, conn: AsyncConnection, document: str, now: int) -> None:
        await conn.exec_driver_sql(self.sql.save_settings, (document, now))

    async def notify(self, conn: AsyncConnection) -> None:
        await conn.exec_driver_sql(self.sql.notify)

    @contextlib.asynccontextmanager
    async def listen(self, wake: asyncio.Event) -> AsyncIterator[Listener]:
        direct = self.settings.postgres_direct
        if direct is None:
            self._say_polling_once()
            yield POLLING
            return
        listener = PostgresListener(direct, self.sql, wake, self.settings.relay.poll_interval * 5)
        task = asyncio.create_task(listener.run(), name="relay-listen")
        try:
            yield listener
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _say_polling_once(self) -> None:
        if PostgresBackend._said_polling:
            return
        PostgresBackend._said_polling = True
        log.warning(
            "DATABASE_URL goes through a transaction pooler (pgbouncer=true) and no"
            " DATABASE_DIRECT_URL is set: relays cannot LISTEN, so they poll, and an event"
            " waits up to RELAY_POLL_INTERVAL (%gs) before delivery; set DATABASE_DIRECT_URL"
            " to the database without the pooler to deliver at once",
            self.settings.relay.poll_interval,
            extra={"action": "relay.polling_only"},
        )

    def grant_sender(self, role: str) -> list[str]:
        return self.sql.grant_sender(role)

    @property
    def batch_writers(self) -> int:
        """Group commits in flight at once. Behind a transaction pooler each costs four round
        trips instead of one (BEGIN, the statement prepared afresh, its execution, COMMIT):
        a few overlapping commits keep that latency from bounding the intake."""
        return WRITERS_BEHIND_POOLER if self.settings.postgres.pgbouncer else 1

    def open_batch_store(self) -> BatchStore:
        return PostgresBatchStore(self.settings.postgres, self.sql, self.batch_writers)
