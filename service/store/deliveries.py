"""The outbox's write and delivery SQL: add events in the caller's transaction, claim a batch
under a lease, record what happened to it. Inspection and repair live in ``outbox_admin``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.errors import InvalidInput
from service.events.payload import NewEvent
from service.store.backend import backend_of
from service.store.engine import reading, single_statement, transaction
from service.store.outcomes import BatchOutcome, Burial, Retry
from service.store.statuses import PENDING, STATUSES
from service.store.tables import outbox_attempts, outbox_events

__all__ = [
    "ClaimedRow",
    "IntakeFigures",
    "add",
    "claim",
    "expedite_retries",
    "free_at",
    "intake_figures",
    "next_due_at",
    "notify_relays",
    "record",
    "status_is",
]

t = outbox_events


def status_is(*statuses: str) -> ColumnElement[bool]:
    """``status = 'dead'`` (or ``IN (...)``) with the values written into the SQL: the partial
    indexes (``WHERE status = 'pending'``) serve only queries that say so literally, and
    PostgreSQL's generic plans of a prepared ``status = $1`` cannot use them."""
    values: list[ColumnElement[Any]] = [literal_column(f"'{s}'") for s in statuses if s in STATUSES]
    if len(values) != len(statuses) or not values:
        raise InvalidInput(f"not an outbox state: {', '.join(statuses)}")
    return t.c.status == values[0] if len(values) == 1 else t.c.status.in_(values)


def free_at(now: int) -> ColumnElement[bool]:
    """The row is held by no relay at ``now`` (never leased, or its lease has ended)."""
    return or_(t.c.locked_until.is_(None), t.c.locked_until <= now)


async def add(conn: AsyncConnection, events: Sequence[NewEvent]) -> int:
    """Insert events as pending, due now, in the caller's transaction, the ones whose id is
    not stored yet; wake listening relays at commit. Return how many were new."""
    return await backend_of(conn).insert(conn, [], events)


async def notify_relays(conn: AsyncConnection) -> None:
    """Wake listening relays when the caller's transaction commits (``add`` does so itself)."""
    await backend_of(conn).notify(conn)


@dataclass(frozen=True)
class ClaimedRow:
    """A row a relay holds under its lease."""

    seq: int
    id: str
    payload: bytes  # the stored event, UTF-8: what the request body is made of
    attempts: int
    created_at: int
    first_failed_at: int | None = None  # when its first failed attempt was made
    env: str | None = None  # sent as ``x-inngest-env``
    inngest_id: str | None = None  # the id Inngest is to give it (None: Inngest decides)
    traceparent: str | None = None  # the caller's trace context, sent as headers
    tracestate: str | None = None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> ClaimedRow:
        """The claimed row of a claim statement's row (its columns named as the fields)."""
        return cls(**{**row, "payload": row["payload"].encode()})


async def claim(
    engine: AsyncEngine,
    relay_id: str,
    limit: int,
    lease_ms: int,
    now: int,
    *,
    early: bool = False,
) -> list[ClaimedRow]:
    """Lease up to ``limit`` due rows to ``relay_id`` in one atomic statement.

    The lease is ``locked_by`` and ``locked_until``: a row is free again when its lease ends
    (so a relay that dies gives its rows back), and its ``next_attempt_at`` stays: no index
    holds the lease's columns, so the claim changes no index (on PostgreSQL a HOT update where
    the page has room). PostgreSQL's SKIP LOCKED lets concurrent relays take disjoint batches;
    on SQLite the statement takes the write lock as it starts, which serializes the claims.
    Being one statement, it needs no explicit transaction (``single_statement``).

    ``early`` takes the rows that fall due first even if they are not due yet (but none that
    another relay holds): an outage's probe needs one row to ask Inngest with, now.

    Up to ``limit`` events that apps committed to the intake (PostgreSQL) are moved into the
    outbox first, by a statement of their own.
    """
    backend = backend_of(engine)
    async with single_statement(engine) as conn:
        await backend.take_in(conn, limit)
        rows = await backend.claim(conn, relay_id, limit, now + lease_ms, now, early=early)
    return sorted((ClaimedRow.of(row._mapping) for row in rows), key=lambda row: row.seq)


async def record(engine: AsyncEngine, relay_id: str, outcome: BatchOutcome, now: int) -> None:
    """Write a batch's outcome. Only rows still leased to ``relay_id`` are rescheduled or
    buried; a delivery is recorded whoever holds the row, since it did reach Inngest."""
    failed = outcome.retries or outcome.burials or outcome.released
    backend = backend_of(engine)
    # The usual outcome, every row delivered, is one statement: no explicit transaction.
    async with (transaction if failed else single_statement)(engine) as conn:
        if outcome.delivered:
            await backend.mark_delivered(conn, outcome.delivered, now)
        if outcome.retries:
            await backend.retry_later(conn, relay_id, outcome.retries, now)
        if outcome.burials:
            await backend.bury(conn, relay_id, outcome.burials, now)
        if outcome.released:
            await backend.release(conn, relay_id, outcome.released, outcome.released_until)
        failures: list[Retry | Burial] = [*outcome.retries, *outcome.burials]
        if failures:
            # Each request that failed was made, whoever holds its rows now: kept for people.
            await conn.execute(
                insert(outbox_attempts),
                [
                    {"event_seq": f.seq, "at": now, "status_code": f.status_code, "error": f.error}
                    for f in failures
                ],
            )


async def expedite_retries(engine: AsyncEngine, now: int) -> int:
    """Make the rows waiting out a retry's backoff due now (Inngest is back); return how many.
    Rows under a lease are left to their relay."""
    async with transaction(engine) as conn:
        result = await conn.execute(
            update(t)
            .where(
                status_is(PENDING),
                t.c.next_attempt_at > now,
                t.c.locked_by.is_(None),
                t.c.attempts > 0,
            )
            .values(next_attempt_at=now)
        )
    return int(result.rowcount)


@dataclass(frozen=True)
class IntakeFigures:
    """What the intake holds: events committed by apps that no relay has taken in yet."""

    rows: int = 0
    oldest_at: int | None = None  # when the oldest was sent (epoch ms)

    def oldest_with(self, other: Any) -> int | None:
        """The earlier of the intake's oldest and ``other`` (an outbox row's time, or None)."""
        return min((int(t) for t in (other, self.oldest_at) if t is not None), default=None)


async def intake_figures(conn: AsyncConnection) -> IntakeFigures:
    """How many events wait in the intake, and since when (none where there is no intake)."""
    intake = backend_of(conn).intake
    if intake is None:
        return IntakeFigures()
    rows, oldest = (await conn.execute(select(func.count(), func.min(intake.c.created_at)))).one()
    return IntakeFigures(int(rows), None if oldest is None else int(oldest))


async def next_due_at(engine: AsyncEngine, now: int) -> int | None:
    """When the earliest pending row that no relay holds at ``now`` falls due (epoch ms), or
    None when there is none; a row in the intake is due since it was sent. A row another relay
    holds is its relay's: if that relay dies, the row is found by a poll once its lease ends."""
    async with reading(engine) as conn:
        earliest = select(func.min(t.c.next_attempt_at)).where(status_is(PENDING), free_at(now))
        due = await conn.scalar(earliest)
        intake = await intake_figures(conn)
    return intake.oldest_with(due)
