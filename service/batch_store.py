"""The group commit's database side: one transaction per batch through the raw drivers.

A batch reads the app settings document and inserts every event of the batch in one
transaction. This is the hot path of ``POST /api``, so it bypasses SQLAlchemy: profiling put
its per-statement work (parameter processing, result wrapping, the async adaption) at about
half of the request's cost. The rows are exactly those ``outbox.add`` writes (a contract test
checks both paths), and the transactional path keeps using ``outbox.add``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import asyncpg

from service.app_settings import EMPTY_DOCUMENT
from service.config import Settings
from service.db import asyncpg_dsn, sqlite_file_identity, sqlite_path
from service.errors import DatabaseUnavailable
from service.idempotency import Claim, claim_postgres, claim_sqlite
from service.models import APP_SETTINGS_ROW
from service.outbox import NOTIFY_CHANNEL, NewEvent

# Called inside the transaction with the settings document's JSON and the idempotency keys
# already held by earlier requests (with their answers); returns the events to insert.
BuildEvents = Callable[[str, Mapping[Claim, str]], Sequence[NewEvent]]

READ_SETTINGS = f"SELECT document FROM app_settings WHERE id = {APP_SETTINGS_ROW}"
SQLITE_INSERT = (
    "INSERT INTO outbox_events (id, name, payload, status, attempts, created_at, next_attempt_at)"
    " VALUES (?, ?, ?, 'pending', 0, ?, ?)"
)
# One statement for the whole batch: arrays in, rows out.
POSTGRES_INSERT = (
    "INSERT INTO outbox_events (id, name, payload, status, attempts, created_at, next_attempt_at)"
    " SELECT id, name, payload, 'pending', 0, created_at, created_at"
    " FROM unnest($1::varchar[], $2::varchar[], $3::text[], $4::bigint[])"
    " AS batch(id, name, payload, created_at)"
)


class BatchStore(Protocol):
    """Writes one group commit."""

    async def write(self, claims: Sequence[Claim], build: BuildEvents) -> dict[Claim, str]:
        """Claim the idempotency keys, read the settings, insert the events ``build`` makes,
        commit; return the claims whose key was already held, with the stored answers.
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
        s = self._settings
        # mode=rw: a missing file is an error, not a new empty database.
        conn = sqlite3.connect(
            f"file:{self._path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )
        self._file = sqlite_file_identity(self._path)
        conn.execute(f"PRAGMA busy_timeout={s.sqlite_busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={s.sqlite_synchronous}")
        return conn

    def _write(self, claims: Sequence[Claim], build: BuildEvents) -> dict[Claim, str]:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if sqlite_file_identity(self._path) != self._file:
                # An open connection writes on into a deleted or replaced file: the events
                # would be acknowledged and then gone. Refuse, and reopen on the next batch.
                self._conn = None
                conn.close()
                raise sqlite3.OperationalError("the database file was removed or replaced")
            held = claim_sqlite(conn, claims)
            stored = conn.execute(READ_SETTINGS).fetchone()
            events = build(EMPTY_DOCUMENT if stored is None else stored[0], held)
            conn.executemany(
                SQLITE_INSERT,
                [(e.id, e.name, e.payload, e.created_at, e.created_at) for e in events],
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return held

    async def write(self, claims: Sequence[Claim], build: BuildEvents) -> dict[Claim, str]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._write, claims, build)
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

    async def write(self, claims: Sequence[Claim], build: BuildEvents) -> dict[Claim, str]:
        try:
            if self._conn is None or self._conn.is_closed():
                # A stuck database must give 503s, not requests that hang.
                self._conn = await asyncpg.connect(self._dsn, timeout=5, command_timeout=30)
            conn = self._conn
            async with conn.transaction():
                held = await claim_postgres(conn, claims)
                stored = await conn.fetchval(READ_SETTINGS)
                events = build(EMPTY_DOCUMENT if stored is None else stored, held)
                await conn.execute(
                    POSTGRES_INSERT,
                    [e.id for e in events],
                    [e.name for e in events],
                    [e.payload for e in events],
                    [e.created_at for e in events],
                )
                await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
            return held
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            await self._drop_connection()
            raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error

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
