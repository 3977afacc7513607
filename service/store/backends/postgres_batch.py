"""The PostgreSQL group commit: asyncpg connections of its own (one per commit in flight),
the backend's outbox INSERT as one statement per batch (with idempotency claims, one
transaction), and its ``NOTIFY``.

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
from service.store.backends.postgres_sql import PostgresStatements
from service.store.backends.rows import as_arrays, insert_rows, new_complete_events
from service.store.batch_writes import (
    Claim,
    Held,
    Written,
    claims_arrays,
    held_by_others,
    not_ours,
    unclaimed,
)
from service.store.db_errors import unavailable

__all__ = ["PostgresBatchStore"]

# What a lost connection or a refused statement raises.
FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresBatchStore:
    """``concurrency`` asyncpg connections, one per commit in flight, each reopened after a
    failure."""

    def __init__(self, url: PostgresUrl, sql: PostgresStatements, concurrency: int = 1) -> None:
        self._url = url
        self._sql = sql
        self.concurrency = concurrency
        self._idle: list[asyncpg.Connection] = []

    async def open(self) -> None:
        with contextlib.suppress(*FAILURES):
            self._idle.append(await self._connection())

    async def _connection(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        # A stuck database must give 503s, not requests that hang.
        return await connect(self._url)

    async def write(
        self, claims: Sequence[Claim], shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> Written:
        conn: asyncpg.Connection | None = None
        try:
            conn = await self._connection()
            if not claims and not self._url.pgbouncer:
                # A lone statement: its own transaction (not behind a transaction pooler,
                # which may hand its prepare and its execution to two server connections).
                written = Written(new_events=await self._insert(conn, shells, events))
            else:
                # The claims and the rows in one transaction (behind a pooler, a lone
                # statement too).
                async with conn.transaction():
                    held = await self._claim(conn, claims)
                    new_events = await self._insert(conn, unclaimed(shells, held), events)
                written = Written(held, new_events)
        except FAILURES as error:
            if conn is not None:
                conn.terminate()
            raise unavailable(error) from error
        self._idle.append(conn)
        return written

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(*FAILURES):
                await conn.close(timeout=5)

    async def _insert(
        self, conn: asyncpg.Connection, shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> int:
        if not shells and not events:
            return 0
        rows = as_arrays(insert_rows(shells, events))
        inserted = await conn.fetchval(self._sql.insert_events, *rows)
        return new_complete_events(shells, inserted)

    async def _claim(self, conn: asyncpg.Connection, claims: Sequence[Claim]) -> Held:
        """Claim the keys in the open transaction; return the stored answers of keys already
        held. The unique key makes a concurrent claim wait, then lose."""
        if not claims:
            return {}
        ours = await conn.fetch(self._sql.claim_keys, *claims_arrays(claims))
        others = not_ours(claims, ours)
        if not others:
            return {}
        keys = [[c.caller for c in others], [c.key for c in others]]
        return held_by_others(others, await conn.fetch(self._sql.stored_answers, *keys))
