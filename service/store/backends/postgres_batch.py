"""The PostgreSQL group commit: one asyncpg connection of its own, the backend's outbox INSERT
as one statement per batch (with idempotency claims, one transaction), and its ``NOTIFY``.

It bypasses SQLAlchemy, whose per-statement work was about half of a request's cost on this,
the hot path of ``POST /api`` and ``POST /e/{key}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import asyncpg

from service.config.database_url import PostgresUrl
from service.events.payload import EventShell, NewEvent
from service.store.backends.postgres_connect import connect
from service.store.backends.postgres_sql import PostgresStatements, insert_arguments
from service.store.backends.rows import new_complete_events
from service.store.batch import Claim, Held, Written, in_key_order, unclaimed
from service.store.db_errors import unavailable

__all__ = ["PostgresBatchStore"]

# What a lost connection or a refused statement raises.
FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresBatchStore:
    """One asyncpg connection, reopened after a failure."""

    def __init__(self, url: PostgresUrl, sql: PostgresStatements) -> None:
        self._url = url
        self._sql = sql
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        with contextlib.suppress(*FAILURES):
            await self._connection()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            # A stuck database must give 503s, not requests that hang.
            self._conn = await connect(self._url)
        return self._conn

    async def write(
        self, claims: Sequence[Claim], shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> Written:
        try:
            conn = await self._connection()
            if not claims and not self._url.pgbouncer:
                # A lone statement: its own transaction (not behind a transaction pooler,
                # which may hand its prepare and its execution to two server connections).
                return Written(new_events=await self._insert(conn, shells, events))
            # The claims and the rows in one transaction (behind a pooler, a lone statement too).
            async with conn.transaction():
                held = await self._claim(conn, claims)
                new_events = await self._insert(conn, unclaimed(shells, held), events)
            return Written(held, new_events)
        except FAILURES as error:
            await self._drop_connection()
            raise unavailable(error) from error

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.terminate()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close(timeout=5)
            self._conn = None

    async def _insert(
        self, conn: asyncpg.Connection, shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> int:
        if not shells and not events:
            return 0
        inserted = await conn.fetchval(self._sql.insert, *insert_arguments(shells, events))
        return new_complete_events(shells, inserted)

    async def _claim(self, conn: asyncpg.Connection, claims: Sequence[Claim]) -> Held:
        """Claim each key in the open transaction; return the stored answers of keys already
        held. The unique key makes a concurrent claim wait, then lose."""
        held: Held = {}
        for c in in_key_order(claims):
            claimed = await conn.fetchval(
                self._sql.claim_key,
                c.caller,
                c.key,
                c.event_id,
                c.response,
                c.created_at,
                c.expires_at,
            )
            if claimed is None:
                held[c] = await conn.fetchval(self._sql.stored_answer, c.caller, c.key)
        return held
