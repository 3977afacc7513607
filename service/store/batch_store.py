"""The group commit's database side: one statement writes a whole batch, through the raw drivers.

The statement reads the app settings document and inserts every event of the batch, completing
each payload with that document (see ``EventShell``): one round trip to PostgreSQL
(``batch_postgres``), one message to the SQLite writer process (``batch_sqlite``). Round trips
count under load: each one waits for the busy event loop to come round to its answer, and the
five a batch took before (begin, read, insert, notify, commit) made a batch take ~3 ms.

This is the hot path of ``POST /api``, so it bypasses SQLAlchemy, whose per-statement work was
about half of a request's cost. The rows are exactly those ``outbox.add`` writes (a contract
test checks both backends), and the transactional path keeps using ``outbox.add``. A batch that
claims idempotency keys runs the claims and the same statement in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.config import Settings
from service.store.batch_postgres import PostgresBatchStore
from service.store.batch_sql import Held
from service.store.batch_sqlite import SqliteBatchStore
from service.store.idempotency import Claim
from service.store.outbox import EventShell


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


def open_batch_store(settings: Settings) -> BatchStore:
    """The store for ``settings.database_url``; it connects when opened, or on its first write."""
    if settings.is_sqlite:
        return SqliteBatchStore(settings)
    return PostgresBatchStore(settings)
