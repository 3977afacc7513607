"""The PostgreSQL group commit: one asyncpg connection, one statement per batch (with the
idempotency claims, one transaction), and a ``NOTIFY`` that wakes listening relays at commit."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import asyncpg

from service.config import Settings
from service.errors import DatabaseUnavailable
from service.store.batch_sql import COLUMNS, SETTINGS_DOCUMENT, Held, unclaimed
from service.store.engine import asyncpg_dsn
from service.store.idempotency import Claim, claim_postgres
from service.store.outbox import EVENT_NAME, NOTIFY_CHANNEL, EventShell

# Arrays in. The notification wakes listening relays at commit, once for the whole batch.
POSTGRES_INSERT = (
    f"WITH inserted AS (INSERT INTO outbox_events ({COLUMNS})"
    " SELECT e.id, $1, e.head || document.data || e.tail, 'pending', 0, e.created_at,"
    f" e.created_at FROM {SETTINGS_DOCUMENT},"
    " unnest($2::varchar[], $3::text[], $4::text[], $5::bigint[])"
    " WITH ORDINALITY AS e(id, head, tail, created_at, position) ORDER BY e.position)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
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

    async def write(self, claims: Sequence[Claim], events: Sequence[EventShell]) -> Held:
        try:
            conn = await self._connection()
            if not claims:
                await self._insert(conn, events)  # a lone statement: its own transaction
                return {}
            async with conn.transaction():
                held = await claim_postgres(conn, claims)
                await self._insert(conn, unclaimed(events, held))
            return held
        except FAILURES as error:
            await self._drop_connection()
            raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error

    @staticmethod
    async def _insert(conn: asyncpg.Connection, events: Sequence[EventShell]) -> None:
        if events:
            await conn.execute(
                POSTGRES_INSERT,
                EVENT_NAME,
                [e.id for e in events],
                [e.head for e in events],
                [e.tail for e in events],
                [e.created_at for e in events],
            )

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.terminate()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close(timeout=5)
            self._conn = None
