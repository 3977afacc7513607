"""The group commit's database side: one statement writes a whole batch, through the raw drivers.

The statement reads the app settings document and inserts every event of the batch, completing
each payload with that document (see ``EventShell``): one round trip to PostgreSQL, one message
to the SQLite writer process (``service.sqlite_store``). Round trips count under load: each one
waits for the busy event loop to come round to its answer, and the five a batch took before
(begin, read, insert, notify, commit) made a batch take ~3 ms.

This is the hot path of ``POST /api``, so it bypasses SQLAlchemy, whose per-statement work was
about half of a request's cost. The rows are exactly those ``outbox.add`` writes (a contract
test checks both backends), and the transactional path keeps using ``outbox.add``. A batch that
claims idempotency keys runs the claims and the same statement in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Protocol

import asyncpg

from service.app_settings import EMPTY_DOCUMENT
from service.config import Settings
from service.db import asyncpg_dsn
from service.errors import DatabaseUnavailable
from service.idempotency import Claim, claim_postgres
from service.models import APP_SETTINGS_ROW
from service.outbox import EVENT_NAME, NOTIFY_CHANNEL, EventShell

# The claims whose idempotency key an earlier request holds, with that request's answer.
Held = dict[Claim, str]

# What the group commit's statements share on both databases.
COLUMNS = "id, name, payload, status, attempts, created_at, next_attempt_at"
# One row, read once per statement: the settings as this transaction sees them.
SETTINGS_DOCUMENT = (
    f"(SELECT coalesce((SELECT document FROM app_settings WHERE id = {APP_SETTINGS_ROW}),"
    f" '{EMPTY_DOCUMENT}') AS data) AS document"
)
# Arrays in. The notification wakes listening relays at commit, once for the whole batch.
POSTGRES_INSERT = (
    f"WITH inserted AS (INSERT INTO outbox_events ({COLUMNS})"
    " SELECT e.id, $1, e.head || document.data || e.tail, 'pending', 0, e.created_at,"
    f" e.created_at FROM {SETTINGS_DOCUMENT},"
    " unnest($2::varchar[], $3::text[], $4::text[], $5::bigint[])"
    " WITH ORDINALITY AS e(id, head, tail, created_at, position) ORDER BY e.position)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
)


def unclaimed(events: Sequence[EventShell], held: Held) -> Sequence[EventShell]:
    """The events to insert: all but those whose idempotency key an earlier request holds."""
    if not held:
        return events
    answered = {claim.event_id for claim in held}
    return [e for e in events if e.id not in answered]


class BatchStore(Protocol):
    """Writes one group commit."""

    async def write(self, claims: Sequence[Claim], events: Sequence[EventShell]) -> Held:
        """Claim the idempotency keys, insert the events whose key was free (their data is the
        settings document as the same transaction reads it) and commit; return the claims
        whose key was already held, with the stored answers.
        Raises ``DatabaseUnavailable`` when the transaction did not commit."""

    async def open(self) -> None:
        """Connect ahead of the first batch, so that it does not wait for that; best effort:
        if the database is not there yet, the first batch tries again (and fails, 503)."""

    async def close(self) -> None:
        """Release the connection."""


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


def open_batch_store(settings: Settings) -> BatchStore:
    """The store for ``settings.database_url``; it connects when opened, or on its first write."""
    if settings.is_sqlite:
        from service.sqlite_store import SqliteBatchStore  # it builds on this module

        return SqliteBatchStore(settings)
    return PostgresBatchStore(settings)
