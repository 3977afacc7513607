"""``Idempotency-Key`` on ``POST /api``: a repeat from the same caller answers the first
response and enqueues nothing.

A key is claimed in the same transaction as its event, by the group commit (``batch.Claim``,
written by each backend's batch store): the claim inserts ``(caller, key)`` or takes over an
expired row, and a key another request holds (another replica, a retry after a timeout)
yields that request's stored answer instead of a new event. Repeats within one process never
reach the database: they wait for the first request's answer. Here: what a key may be, and
the purge of expired keys.
"""

from __future__ import annotations

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import InvalidInput
from service.events.ids import now_ms
from service.store.engine import transaction
from service.store.tables import idempotency_keys

__all__ = ["MAX_KEY_LENGTH", "purge_expired", "validate_key"]

MAX_KEY_LENGTH = 255
PURGE_BATCH = 1000


def validate_key(raw: str) -> str:
    """The key as sent, if it is 1 to 255 printable ASCII characters."""
    if not 0 < len(raw) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in raw):
        raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return raw


async def purge_expired(engine: AsyncEngine) -> int:
    """Delete expired keys in bounded batches (short transactions); return how many went."""
    t = idempotency_keys
    removed = 0
    while True:
        expired = select(t.c.caller, t.c.key).where(t.c.expires_at < now_ms()).limit(PURGE_BATCH)
        async with transaction(engine) as conn:
            result = await conn.execute(delete(t).where(tuple_(t.c.caller, t.c.key).in_(expired)))
        removed += result.rowcount
        if result.rowcount < PURGE_BATCH:
            return removed
