"""The group commit's database side: one statement per kind of row writes a whole batch,
through the raw drivers.

A batch holds two kinds of rows. ``openapi/app.sync`` events (``EventShell``) have their data
completed in SQL: the statement reads the app settings document and inserts every such event
of the batch with it. Events of the Event API (``NewEvent``) arrive complete and are inserted
as they are, a repeat of an id already stored being left out. A batch of one kind and no
idempotency claims is one statement: one round trip to PostgreSQL (``batch_postgres``), one
message to the SQLite writer process (``batch_sqlite``). Round trips count under load: each
one waits for the busy event loop to come round to its answer, and the five a batch took
before (begin, read, insert, notify, commit) made a batch take ~3 ms. Claims, or both kinds,
make it one transaction of several statements.

This is the hot path of ``POST /api`` and ``POST /e/{key}``, so it bypasses SQLAlchemy, whose
per-statement work was about half of a request's cost. The rows are exactly those
``outbox.add`` writes (a contract test checks both backends), and the transactional path keeps
using ``outbox.add``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.config import Settings
from service.store.batch_postgres import PostgresBatchStore
from service.store.batch_sql import Written
from service.store.batch_sqlite import SqliteBatchStore
from service.store.idempotency import Claim
from service.store.outbox import EventShell, NewEvent


class BatchStore(Protocol):
    """Writes one group commit."""

    async def write(
        self, claims: Sequence[Claim], shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> Written:
        """In one transaction: claim the idempotency keys, insert the shells whose key was
        free (their data is the settings document as the same transaction reads it) and the
        complete events whose id is not stored yet; commit. Return the claims whose key was
        already held, with the stored answers, and how many complete events were new.
        Raises ``DatabaseUnavailable`` when the transaction did not commit."""

    async def open(self) -> None:
        """Connect ahead of the first batch, so that it does not wait for that; best effort:
        if the database is not there yet, the first batch tries again (and fails, 503)."""

    async def close(self) -> None:
        """Release the connection."""


def open_batch_store(settings: Settings) -> BatchStore:
    """The store for ``settings.database_url``; it connects when opened, or on its first write."""
    if settings.is_sqlite:
        return SqliteBatchStore(settings)
    return PostgresBatchStore(settings)
