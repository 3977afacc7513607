"""A relay's listening connection to PostgreSQL: ``LISTEN`` for the writers' ``NOTIFY``, and the
advisory lock that says the relay waits for work (see ``postgres_sql``).

The connection is kept open, reconnecting after a loss (polling covers the gaps). The workers
of a relay share it: the first that waits takes the lock, the last that stops waiting lets it
go; a lost connection lets go of it by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from service.config.database_url import PostgresUrl
from service.store.backends.postgres_connect import connect
from service.store.backends.postgres_sql import PostgresStatements

__all__ = ["PostgresListener"]

log = logging.getLogger(__name__)

FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresListener:
    """Listens on one connection; ``run`` keeps it open until cancelled."""

    def __init__(
        self, url: PostgresUrl, sql: PostgresStatements, wake: asyncio.Event, retry_after: float
    ) -> None:
        self._url = url
        self._sql = sql
        self._wake = wake
        self._retry_after = retry_after
        self._conn: asyncpg.Connection | None = None
        self._talking = asyncio.Lock()  # one query at a time on the connection
        self._waiters = 0  # workers waiting under the lock this connection holds

    async def run(self) -> None:
        """Keep a LISTEN connection open, reconnecting after a loss."""
        while True:
            try:
                conn = await connect(self._url)
            except FAILURES as exc:
                log.warning(
                    "LISTEN connection failed: %s", exc, extra={"action": "relay.listen_failed"}
                )
                await asyncio.sleep(self._retry_after)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _conn, ended=lost: ended.set())
                await conn.add_listener(self._sql.channel, lambda *_args: self._wake.set())
                self._conn, self._waiters = conn, 0
                self._wake.set()  # rows may have arrived while nobody listened
                await lost.wait()
                log.warning("LISTEN connection lost", extra={"action": "relay.listen_lost"})
            finally:
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    @contextlib.asynccontextmanager
    async def waiting(self) -> AsyncIterator[bool]:
        may_wait, holding = await self._start_waiting()
        try:
            yield may_wait
        finally:
            if holding is not None:
                await self._stop_waiting(holding)

    async def _start_waiting(self) -> tuple[bool, asyncpg.Connection | None]:
        """Whether this worker may sleep, and the connection whose lock it shares, if any."""
        async with self._talking:
            conn = self._conn
            if conn is None:
                return True, None  # nobody would wake it: it polls
            if self._waiters:
                self._waiters += 1
                return True, conn
            try:
                if await conn.fetchval(self._sql.start_waiting):
                    self._waiters = 1
                    return True, conn
                # The lock is someone else's: writers in flight hold it shared (look again
                # soon), or another relay waits (its wake-ups reach this relay too).
                return not await conn.fetchval(self._sql.shared_available), None
            except FAILURES:
                return True, None

    async def _stop_waiting(self, holding: asyncpg.Connection) -> None:
        async with self._talking:
            conn = self._conn
            if conn is None or holding is not conn:
                return  # that connection is gone, and its lock with it
            self._waiters -= 1
            if not self._waiters:
                with contextlib.suppress(*FAILURES):
                    await conn.fetchval(self._sql.stop_waiting)
