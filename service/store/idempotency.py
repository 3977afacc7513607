"""``Idempotency-Key`` on ``POST /api``: a repeat from the same caller answers the first
response and enqueues nothing.

A key is claimed in the same transaction as its event: the claim inserts ``(caller, key)`` or
takes over an expired row, and a key another request holds (another replica, a retry after a
timeout) yields that request's stored answer instead of a new event. Repeats within one
process never reach the database: they wait for the first request's answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import InvalidInput
from service.store.engine import now_ms, transaction
from service.store.tables import idempotency_keys

MAX_KEY_LENGTH = 255
PURGE_BATCH = 1000


def validate_key(raw: str) -> str:
    """The key as sent, if it is 1 to 255 printable ASCII characters."""
    if not 0 < len(raw) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in raw):
        raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return raw


@dataclass(frozen=True)
class Claim:
    """A key one request wants, with the answer it will give if it gets the key."""

    caller: str
    key: str
    event_id: str
    response: str
    created_at: int
    expires_at: int


# Insert the key, or take over a row whose time is up; RETURNING says whether it is ours.
_CLAIM = (
    "INSERT INTO idempotency_keys (caller, key, event_id, response, created_at, expires_at)"
    " VALUES ({p}) ON CONFLICT (caller, key) DO UPDATE SET event_id = excluded.event_id,"
    " response = excluded.response, created_at = excluded.created_at,"
    " expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= {now}"
    " RETURNING event_id"
)
_STORED = "SELECT response FROM idempotency_keys WHERE caller = {a} AND key = {b}"
SQLITE_CLAIM = _CLAIM.format(p="?, ?, ?, ?, ?, ?", now="?")
SQLITE_STORED = _STORED.format(a="?", b="?")
POSTGRES_CLAIM = _CLAIM.format(p="$1, $2, $3, $4, $5, $6", now="$7")
POSTGRES_STORED = _STORED.format(a="$1", b="$2")


def _values(claim: Claim) -> tuple[str, str, str, str, int, int, int]:
    return (
        claim.caller,
        claim.key,
        claim.event_id,
        claim.response,
        claim.created_at,
        claim.expires_at,
        claim.created_at,
    )


def _key_order(claim: Claim) -> tuple[str, str]:
    # Every writer takes keys in the same order, so two replicas claiming the same keys wait
    # for one another instead of deadlocking.
    return claim.caller, claim.key


def claim_sqlite(conn: sqlite3.Connection, claims: Sequence[Claim]) -> dict[Claim, str]:
    """Claim each key in the open transaction; return the stored answers of keys already held."""
    held: dict[Claim, str] = {}
    for claim in sorted(claims, key=_key_order):
        if conn.execute(SQLITE_CLAIM, _values(claim)).fetchone() is None:
            held[claim] = conn.execute(SQLITE_STORED, (claim.caller, claim.key)).fetchone()[0]
    return held


async def claim_postgres(conn: asyncpg.Connection, claims: Sequence[Claim]) -> dict[Claim, str]:
    """``claim_sqlite`` for asyncpg; the unique key makes a concurrent claim wait, then lose."""
    held: dict[Claim, str] = {}
    for claim in sorted(claims, key=_key_order):
        if await conn.fetchval(POSTGRES_CLAIM, *_values(claim)) is None:
            held[claim] = await conn.fetchval(POSTGRES_STORED, claim.caller, claim.key)
    return held


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
