"""The PostgreSQL group commit: one asyncpg connection, one statement per batch of one kind
(with idempotency claims, or both kinds, one transaction), and a ``NOTIFY`` that wakes
listening relays at commit (PostgreSQL sends it once per transaction, however many asked)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import asyncpg

from service.config import Settings
from service.errors import DatabaseUnavailable
from service.store.batch_sql import (
    COLUMNS,
    EVENT_COLUMNS,
    ON_REPEAT,
    SETTINGS_DOCUMENT,
    Written,
    unclaimed,
)
from service.store.engine import asyncpg_dsn
from service.store.idempotency import Claim, claim_postgres
from service.store.outbox import EVENT_NAME, NOTIFY_CHANNEL, EventShell, NewEvent

# Arrays in. The notification wakes listening relays at commit, once for the whole batch.
POSTGRES_INSERT = (
    f"WITH inserted AS (INSERT INTO outbox_events ({COLUMNS})"
    " SELECT e.id, $1, e.head || document.data || e.tail, 'pending', 0, e.created_at,"
    f" e.created_at FROM {SETTINGS_DOCUMENT},"
    " unnest($2::varchar[], $3::text[], $4::text[], $5::bigint[])"
    " WITH ORDINALITY AS e(id, head, tail, created_at, position) ORDER BY e.position)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
)
# Complete events, as they are; the answer is how many were new (not repeats).
POSTGRES_INSERT_EVENTS = (
    f"WITH inserted AS (INSERT INTO outbox_events ({EVENT_COLUMNS})"
    " SELECT e.id, e.name, e.payload, 'pending', 0, e.created_at, e.created_at, e.env"
    " FROM unnest($1::varchar[], $2::varchar[], $3::text[], $4::bigint[], $5::varchar[])"
    " WITH ORDINALITY AS e(id, name, payload, created_at, env, position) ORDER BY e.position"
    f" {ON_REPEAT} RETURNING 1)"
    f" SELECT (SELECT count(*) FROM inserted), pg_notify('{NOTIFY_CHANNEL}', '')"
)


# What a lost connection or a refused statement raises.
FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresBatchStore:
    """One asyncpg connection, reopened after a failure."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = asyncpg_dsn(settings)
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        with contextlib.suppress(*FAILURES):
            await self._connection()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            # A stuck database must give 503s, not requests that hang.
            self._conn = await asyncpg.connect(self._dsn, timeout=5, command_timeout=30)
        return self._conn

    async def write(
        self, claims: Sequence[Claim], shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> Written:
        try:
            conn = await self._connection()
            if not claims and not (shells and events):
                # A lone statement: its own transaction.
                await self._insert(conn, shells)
                return Written(new_events=await self._insert_events(conn, events))
            async with conn.transaction():
                held = await claim_postgres(conn, claims)
                await self._insert(conn, unclaimed(shells, held))
                new_events = await self._insert_events(conn, events)
            return Written(held, new_events)
        except FAILURES as error:
            await self._drop_connection()
            raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error

    @staticmethod
    async def _insert(conn: asyncpg.Connection, shells: Sequence[EventShell]) -> None:
        if shells:
            await conn.execute(
                POSTGRES_INSERT,
                EVENT_NAME,
                [e.id for e in shells],
                [e.head for e in shells],
                [e.tail for e in shells],
                [e.created_at for e in shells],
            )

    @staticmethod
    async def _insert_events(conn: asyncpg.Connection, events: Sequence[NewEvent]) -> int:
        if not events:
            return 0
        new: int = await conn.fetchval(
            POSTGRES_INSERT_EVENTS,
            [e.id for e in events],
            [e.name for e in events],
            [e.payload for e in events],
            [e.created_at for e in events],
            [e.env for e in events],
        )
        return new

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.terminate()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close(timeout=5)
            self._conn = None
