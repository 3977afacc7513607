"""The group commit's database side: one statement writes a whole batch, through the raw drivers.

The statement reads the app settings document and inserts every event of the batch, completing
each payload with that document (see ``EventShell``): on SQLite it is one step of the driver's
thread, on PostgreSQL one round trip. Both count under load. The sqlite3 thread has to win the
GIL back from the busy event loop after every step (30 rows inserted one step each took 3 ms),
and each PostgreSQL round trip waits for the event loop to come round to its answer.

This is the hot path of ``POST /api``, so it bypasses SQLAlchemy, whose per-statement work was
about half of a request's cost. The rows are exactly those ``outbox.add`` writes (a contract
test checks both paths), and the transactional path keeps using ``outbox.add``. A batch that
claims idempotency keys runs the claims and the same statement in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import asyncpg

from service.app_settings import EMPTY_DOCUMENT
from service.config import Settings
from service.db import apply_sqlite_pragmas, asyncpg_dsn, sqlite_file_identity, sqlite_path
from service.errors import DatabaseUnavailable
from service.idempotency import Claim, claim_postgres, claim_sqlite
from service.models import APP_SETTINGS_ROW
from service.outbox import EVENT_NAME, NOTIFY_CHANNEL, EventShell

# The claims whose idempotency key an earlier request holds, with that request's answer.
Held = dict[Claim, str]

_COLUMNS = "id, name, payload, status, attempts, created_at, next_attempt_at"
# One row, read once per statement: the settings as this transaction sees them.
_DOCUMENT = (
    f"(SELECT coalesce((SELECT document FROM app_settings WHERE id = {APP_SETTINGS_ROW}),"
    f" '{EMPTY_DOCUMENT}') AS data) AS document"
)
# The batch comes as one JSON array of [id, head, tail, created_at] rows: a single parameter.
SQLITE_INSERT = (
    f"INSERT INTO outbox_events ({_COLUMNS})"
    " SELECT json_extract(e.value, '$[0]'), ?,"
    " json_extract(e.value, '$[1]') || document.data || json_extract(e.value, '$[2]'),"
    " 'pending', 0, json_extract(e.value, '$[3]'), json_extract(e.value, '$[3]')"
    f" FROM {_DOCUMENT}, json_each(?) AS e ORDER BY e.key"
)
# Arrays in. The notification wakes listening relays at commit, once for the whole batch.
POSTGRES_INSERT = (
    f"WITH inserted AS (INSERT INTO outbox_events ({_COLUMNS})"
    " SELECT e.id, $1, e.head || document.data || e.tail, 'pending', 0, e.created_at,"
    f" e.created_at FROM {_DOCUMENT},"
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

    async def close(self) -> None:
        """Release the connection."""


class SqliteBatchStore:
    """A stdlib sqlite3 connection of its own, used from one dedicated thread."""

    def __init__(self, settings: Settings) -> None:
        self._path = sqlite_path(settings)
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-store")
        self._conn: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: a missing file is an error, not a new empty database.
        conn = sqlite3.connect(
            f"file:{self._path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )
        self._file = sqlite_file_identity(self._path)
        apply_sqlite_pragmas(conn.cursor(), self._settings)
        return conn

    def _write(self, claims: Sequence[Claim], events: Sequence[EventShell]) -> Held:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        if sqlite_file_identity(self._path) != self._file:
            # An open connection writes on into a deleted or replaced file: the events would be
            # acknowledged and then gone. Refuse, and reopen on the next batch.
            self._conn = None
            conn.close()
            raise sqlite3.OperationalError("the database file was removed or replaced")
        if not claims:
            # A lone statement is its own transaction; it takes the write lock as it starts.
            self._insert(conn, events)
            return {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            held = claim_sqlite(conn, claims)
            self._insert(conn, unclaimed(events, held))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return held

    @staticmethod
    def _insert(conn: sqlite3.Connection, events: Sequence[EventShell]) -> None:
        if events:
            rows = json.dumps([(e.id, e.head, e.tail, e.created_at) for e in events])
            conn.execute(SQLITE_INSERT, (EVENT_NAME, rows))

    async def write(self, claims: Sequence[Claim], events: Sequence[EventShell]) -> Held:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._write, claims, events)
        except sqlite3.Error as error:
            raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error

    async def close(self) -> None:
        def close_connection() -> None:
            if self._conn is not None:
                self._conn.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close_connection)
        self._executor.shutdown(wait=True)


class PostgresBatchStore:
    """One asyncpg connection, reopened after a failure."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = asyncpg_dsn(settings)
        self._conn: asyncpg.Connection | None = None

    async def write(self, claims: Sequence[Claim], events: Sequence[EventShell]) -> Held:
        try:
            if self._conn is None or self._conn.is_closed():
                # A stuck database must give 503s, not requests that hang.
                self._conn = await asyncpg.connect(self._dsn, timeout=5, command_timeout=30)
            conn = self._conn
            if not claims:
                await self._insert(conn, events)  # a lone statement: its own transaction
                return {}
            async with conn.transaction():
                held = await claim_postgres(conn, claims)
                await self._insert(conn, unclaimed(events, held))
            return held
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
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
    """The store for ``settings.database_url``; it connects on its first write."""
    if settings.is_sqlite:
        return SqliteBatchStore(settings)
    return PostgresBatchStore(settings)
