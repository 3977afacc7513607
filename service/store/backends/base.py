"""The interface every database backend implements, and what the backends share.

A backend owns everything that differs between SQLite and PostgreSQL: how its engine and its
connections are set up, the outbox ``INSERT`` (one statement per backend, used by every path
that adds events), row locking, ``seq IN``, upserts, waking relays (``NOTIFY``/``LISTEN``) and
the group commit's writer. The rest of the store writes its SQL once, with SQLAlchemy Core,
and asks the backend of its engine (``backend_of``) for these pieces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from service.events.payload import EventShell, NewEvent
from service.store.batch import BatchStore

__all__ = ["BACKEND_OPTION", "READ_ONLY", "Backend", "upsert_statement"]

# The execution option under which an engine made by a backend carries it (``backend_of``).
BACKEND_OPTION = "service_backend"
# SQLite transactions are BEGIN IMMEDIATE unless a connection asks for a read-only one; on
# PostgreSQL the option means nothing.
READ_ONLY = {"service_read_only": True}


class Backend(Protocol):
    """What one kind of database does its own way."""

    name: str  # the SQLAlchemy dialect's name: "sqlite" or "postgresql"
    # Whether alembic alters a table by copying it (SQLite cannot drop or alter columns).
    migrates_by_copy: bool

    def create_engine(self) -> AsyncEngine:
        """An async engine for the database, which carries this backend (``backend_of``)."""

    def missing(self) -> str | None:
        """Why the database cannot be there without connecting (a SQLite file gone), or None."""

    def before_upgrade(self) -> None:
        """Make what a first migration needs (a SQLite file's folder)."""

    def after_upgrade(self) -> None:
        """Settle what the migrations leave (a SQLite file's journal mode)."""

    async def single_statement(self, conn: AsyncConnection) -> AsyncConnection:
        """``conn`` set up so that each statement is a transaction of its own."""

    async def insert(
        self, conn: AsyncConnection, shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> int:
        """The outbox INSERT in ``conn``'s transaction: the shells (data read from the settings
        in the same statement) and the complete events whose id is not stored yet, all pending
        and due now; relays are woken at commit. Returns how many complete events were new."""

    def seq_in(self, column: ColumnElement[int], seqs: Sequence[int]) -> ColumnElement[bool]:
        """``column IN (seqs)``, as cheap to prepare as this database makes it."""

    def locked(self, statement: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
        """``statement`` taking row locks on what it selects, until the transaction ends."""

    def upsert(self, table: Table, row: Mapping[str, Any], key: str) -> Insert:
        """Insert ``row``, or give the row with the same ``key`` column its other values."""

    async def notify(self, conn: AsyncConnection) -> None:
        """Wake listening relays when ``conn``'s transaction commits."""

    def listen(self, wake: asyncio.Event) -> AbstractAsyncContextManager[None]:
        """While open, set ``wake`` whenever another process commits new rows (where the
        database can say so; else relays poll)."""

    def open_batch_store(self) -> BatchStore:
        """The group commit's writer; it connects when opened, or on its first write."""


def upsert_statement(
    insert: Callable[[Table], Any], table: Table, row: Mapping[str, Any], key: str
) -> Insert:
    """``upsert`` with a dialect's own ``insert`` (both dialects spell ON CONFLICT alike)."""
    changes = {column: value for column, value in row.items() if column != key}
    statement: Insert = (
        insert(table).values(**row).on_conflict_do_update(index_elements=[key], set_=changes)
    )
    return statement
