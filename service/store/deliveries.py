"""The outbox's write and delivery SQL: add events in the caller's transaction, claim a batch
under a lease, record what happened to it. Inspection and repair live in ``outbox_admin``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.errors import InvalidInput
from service.events.payload import NewEvent
from service.store.backend import backend_of
from service.store.engine import reading, single_statement, transaction
from service.store.statuses import DEAD, DELIVERED, PENDING, STATUSES
from service.store.tables import outbox_events

__all__ = [
    "BatchOutcome",
    "Burial",
    "ClaimedRow",
    "IntakeFigures",
    "Retry",
    "add",
    "claim",
    "expedite_retries",
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

    The lease moves ``next_attempt_at`` to its end: if the relay dies, the rows fall due again
    when the lease runs out, and the claim needs no other condition than "due". PostgreSQL's
    SKIP LOCKED lets concurrent relays take disjoint batches; on SQLite the statement takes the
    write lock as it starts, which serializes the claims. Being one statement, it needs no
    explicit transaction (``single_statement``).

    ``early`` takes the rows that fall due first even if they are not due yet (but none that
    another relay holds): an outage's probe needs one row to ask Inngest with, now.

    Up to ``limit`` events that apps committed to the intake (PostgreSQL) are moved into the
    outbox first, by a statement of their own.
    """
    until = now + lease_ms
    if early:
        free = or_(t.c.locked_until.is_(None), t.c.locked_until <= now)
    else:
        free = t.c.next_attempt_at <= now
    due = (
        backend_of(engine)
        .locked(
            select(t.c.seq)
            .where(status_is(PENDING), free)
            .order_by(t.c.next_attempt_at, t.c.seq)
            .limit(limit),
            skip_locked=True,
        )
        .scalar_subquery()
    )
    statement = (
        update(t)
        .where(t.c.seq.in_(due))
        .values(locked_by=relay_id, locked_until=until, next_attempt_at=until)
        .returning(
            t.c.seq,
            t.c.id,
            t.c.payload,
            t.c.attempts,
            t.c.created_at,
            t.c.first_failed_at,
            t.c.env,
            t.c.inngest_id,
            t.c.traceparent,
            t.c.tracestate,
        )
    )
    async with single_statement(engine) as conn:
        await backend_of(engine).take_in(conn, limit)
        rows = (await conn.execute(statement)).all()
    claimed = [
        ClaimedRow(seq, event_id, payload.encode(), attempts, created_at, *rest)
        for seq, event_id, payload, attempts, created_at, *rest in rows
    ]
    claimed.sort(key=lambda row: row.seq)
    return claimed


@dataclass(frozen=True)
class Retry:
    """A row to try again at ``at`` (epoch ms) after ``error``; its first failure is now, unless
    it had failed before."""

    seq: int
    at: int
    error: str


@dataclass(frozen=True)
class Burial:
    """A row that failed for good."""

    seq: int
    error: str


@dataclass
class BatchOutcome:
    """What a relay learned about the rows it held; recorded in one transaction."""

    delivered: list[int] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    burials: list[Burial] = field(default_factory=list)
    # Rows handed back untouched (attempts unchanged), due at the given time: a wrong key.
    released: list[int] = field(default_factory=list)
    released_until: int = 0


async def record(engine: AsyncEngine, relay_id: str, outcome: BatchOutcome, now: int) -> None:
    """Write a batch's outcome. Only rows still leased to ``relay_id`` are rescheduled or
    buried; a delivery is recorded whoever holds the row, since it did reach Inngest."""
    held = and_(t.c.seq == bindparam("b_seq"), status_is(PENDING), t.c.locked_by == relay_id)
    unlock = {"locked_by": None, "locked_until": None}
    failed = outcome.retries or outcome.burials or outcome.released
    backend = backend_of(engine)
    # The usual outcome, every row delivered, is one statement: no explicit transaction.
    async with (transaction if failed else single_statement)(engine) as conn:
        if outcome.delivered:
            await conn.execute(
                update(t)
                .where(backend.seq_in(t.c.seq, outcome.delivered), status_is(PENDING))
                .values(status=DELIVERED, completed_at=now, attempts=t.c.attempts + 1, **unlock)
            )
        if outcome.retries:
            await conn.execute(
                update(t)
                .where(held)
                .values(
                    attempts=t.c.attempts + 1,
                    next_attempt_at=bindparam("b_at"),
                    last_error=bindparam("b_error"),
                    first_failed_at=func.coalesce(t.c.first_failed_at, now),
                    **unlock,
                ),
                [{"b_seq": r.seq, "b_at": r.at, "b_error": r.error} for r in outcome.retries],
            )
        if outcome.burials:
            await conn.execute(
                update(t)
                .where(held)
                .values(
                    status=DEAD,
                    attempts=t.c.attempts + 1,
                    completed_at=now,
                    last_error=bindparam("b_error"),
                    **unlock,
                ),
                [{"b_seq": b.seq, "b_error": b.error} for b in outcome.burials],
            )
        if outcome.released:
            await conn.execute(
                update(t)
                .where(
                    backend.seq_in(t.c.seq, outcome.released),
                    status_is(PENDING),
                    t.c.locked_by == relay_id,
                )
                .values(next_attempt_at=outcome.released_until, **unlock)
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


async def next_due_at(engine: AsyncEngine) -> int | None:
    """When the earliest pending row falls due (epoch ms), or None when nothing is pending;
    a row in the intake is due since it was sent."""
    async with reading(engine) as conn:
        earliest = select(func.min(t.c.next_attempt_at)).where(status_is(PENDING))
        due = await conn.scalar(earliest)
        intake = await intake_figures(conn)
    return intake.oldest_with(due)
