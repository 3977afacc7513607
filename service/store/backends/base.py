"""The interface every database backend implements, and what the backends share.

A backend owns everything that differs between SQLite and PostgreSQL, as whole operations:
its engine, its connections and its migrations' setting up; the writes of the outbox (the
events of every path that adds them, the intake's take-in, a relay's claim and the outcomes of
its batch, the settings document), each one of its named statements; waking relays
(``NOTIFY``/``LISTEN``); the roles that may send; and the group commit's writer. The rest of the
store, written once with SQLAlchemy Core (reads, inspection, repair), asks the backend of its
engine (``backend_of``) for these and never which database it is on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Row, Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.events.payload import EventShell, NewEvent
from service.store.batch_writes import BatchStore
from service.store.outcomes import Burial, Retry

__all__ = [
    "BACKEND_OPTION",
    "POLLING",
    "READ_ONLY",
    "AppEvent",
    "AppWrites",
    "Backend",
    "Listener",
]

# The execution option under which an engine made by a backend carries it (``backend_of``).
BACKEND_OPTION = "service_backend"
# SQLite transactions are BEGIN IMMEDIATE unless a connection asks for a read-only one; on
# PostgreSQL the option means nothing.
READ_ONLY = {"service_read_only": True}


class Listener(Protocol):
    """A relay's line to the processes that write events: how it says that it waits for work,
    so that writers wake it (and, until it waits, spare themselves the wake-up)."""

    def waiting(self) -> AbstractAsyncContextManager[bool]:
        """While open, this relay waits for work. True: it may sleep until woken (or its poll);
        False: writers are committing rows right now, so it should look again in a moment."""


class _Polling:
    """The listener of a database that cannot wake relays: they may always sleep, and poll."""

    @contextlib.asynccontextmanager
    async def waiting(self) -> AsyncIterator[bool]:
        yield True


POLLING: Listener = _Polling()


class AppWrites(Protocol):
    """How ``send_event`` writes an event in an app's own transaction on one kind of database
    (the app's engine, which carries no backend: the connection's dialect picks it)."""

    def inngest_id(self, conn: AsyncConnection, written_at: int) -> str:
        """The Inngest id of the next event sent on ``conn``; where the database makes it, a
        stand-in of its length (what the event's size is measured with)."""

    async def size_limit(self, conn: AsyncConnection, schema: str) -> int:
        """The largest event the service takes (bytes, as stored) on ``conn``'s database."""

    async def write(self, conn: AsyncConnection, event: AppEvent) -> str:
        """Write the checked event in ``conn``'s transaction; return its id."""


@dataclass(frozen=True)
class AppEvent:
    """An event an app sends in its transaction, checked by the Event API's rules: the event
    as stored (``payload``, ``document`` its fields), its own id if it gave one, its Inngest
    environment and id, when it was written, the schema of the service's tables and the size
    limit it was checked against."""

    document: Mapping[str, Any]
    payload: str
    own_id: str | None
    env: str | None
    inngest_id: str
    written_at: int
    schema: str
    size_limit: int


class Backend(Protocol):
    """What one kind of database does its own way."""

    name: str  # the SQLAlchemy dialect's name: "sqlite" or "postgresql"
    # Whether alembic alters a table by copying it (SQLite cannot drop or alter columns).
    migrates_by_copy: bool
    schema: str | None  # where the service's tables are, when the database has schemas
    # Where apps' own transactions write their events until a relay takes them into the
    # outbox (``take_in``); None where they write the outbox itself.
    intake: Table | None

    def create_engine(self) -> AsyncEngine:
        """An async engine for the database, which carries this backend (``backend_of``)."""

    def migration_engine(self) -> AsyncEngine:
        """An engine for the migrations: no pool of its own, and on a connection that is a
        session of its own (never a transaction pooler's)."""

    def missing(self) -> str | None:
        """Why the database cannot be there without connecting (a SQLite file gone), or None."""

    def before_upgrade(self) -> None:
        """Make what a first migration needs (a SQLite file's folder)."""

    def migration_preamble(self) -> list[str]:
        """Statements that open the migrations' transaction (PostgreSQL: the schema created,
        and the only one searched while they run)."""

    def migration_epilogue(self) -> list[str]:
        """Statements that close the migrations' transaction (PostgreSQL: ``send_event``'s
        size limit set from the settings)."""

    def after_upgrade(self) -> None:
        """Settle what the migrations leave (a SQLite file's journal mode)."""

    @property
    def lone_statements_commit(self) -> bool:
        """Whether a statement sent without BEGIN (``single_statement``) commits by itself;
        otherwise ``single_statement`` gives a transaction of its own."""

    async def single_statement(self, conn: AsyncConnection) -> AsyncConnection:
        """``conn`` set up so that each statement is a transaction of its own."""

    async def insert(
        self, conn: AsyncConnection, shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> int:
        """The outbox INSERT in ``conn``'s transaction: the shells (data read from the settings
        in the same statement) and the complete events whose id is not stored yet, all pending
        and due now; relays are woken at commit. Returns how many complete events were new."""

    async def take_in(self, conn: AsyncConnection, limit: int) -> int:
        """Move up to ``limit`` committed rows of the intake into the outbox, pending and due
        at once (a repeated id dropped); return how many left the intake (0 without one)."""

    async def claim(
        self, conn: AsyncConnection, relay_id: str, limit: int, until: int, now: int, *, early: bool
    ) -> Sequence[Row[Any]]:
        """Lease up to ``limit`` due rows (``early``: the first to fall due, but none a relay
        holds) to ``relay_id`` until ``until``, in one statement; the claimed rows' fields as
        ``ClaimedRow`` names them."""

    async def mark_delivered(self, conn: AsyncConnection, seqs: Sequence[int], now: int) -> None:
        """The rows ``seqs`` are delivered, whoever holds them."""

    async def retry_later(
        self, conn: AsyncConnection, relay_id: str, retries: Sequence[Retry], now: int
    ) -> None:
        """Each row ``relay_id`` still holds is due again at its time, after its error."""

    async def bury(
        self, conn: AsyncConnection, relay_id: str, burials: Sequence[Burial], now: int
    ) -> None:
        """Each row ``relay_id`` still holds is dead, after its error."""

    async def release(
        self, conn: AsyncConnection, relay_id: str, seqs: Sequence[int], until: int
    ) -> None:
        """The rows ``relay_id`` still holds go back untouched, due at ``until``."""

    async def save_settings(self, conn: AsyncConnection, document: str, now: int) -> None:
        """Store the app settings document (JSON text), changed at ``now``."""

    async def notify(self, conn: AsyncConnection) -> None:
        """Wake listening relays when ``conn``'s transaction commits."""

    def listen(self, wake: asyncio.Event) -> AbstractAsyncContextManager[Listener]:
        """While open, set ``wake`` whenever another process commits new rows for a relay that
        waits (where the database can say so; else relays poll)."""

    def grant_sender(self, role: str) -> list[str]:
        """The statements that let ``role`` call ``send_event`` and nothing else of the
        service's; ``InvalidInput`` where the database has no roles."""

    def open_batch_store(self) -> BatchStore:
        """The group commit's writer; it connects when opened, or on its first write."""
