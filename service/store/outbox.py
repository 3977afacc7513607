"""The outbox's write and delivery SQL: add events in the caller's transaction, claim a batch
under a lease, record what happened to it. Inspection and repair live in ``outbox_admin``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.errors import InvalidInput
from service.store.engine import now_ms, reading, single_statement, transaction
from service.store.tables import DEAD, DELIVERED, PENDING, STATUSES, outbox_events

EVENT_NAME = "openapi/app.sync"
EVENT_VERSION = "1"
NOTIFY_CHANNEL = "outbox_events"
t = outbox_events


def status_is(*statuses: str) -> ColumnElement[bool]:
    """``status = 'dead'`` (or ``IN (...)``) with the values written into the SQL: the partial
    indexes (``WHERE status = 'pending'``) serve only queries that say so literally, and
    PostgreSQL's generic plans of a prepared ``status = $1`` cannot use them."""
    values: list[ColumnElement[Any]] = [literal_column(f"'{s}'") for s in statuses if s in STATUSES]
    if len(values) != len(statuses) or not values:
        raise InvalidInput(f"not an outbox state: {', '.join(statuses)}")
    return t.c.status == values[0] if len(values) == 1 else t.c.status.in_(values)


def new_ids(count: int, at: int | None = None) -> list[str]:
    """``count`` time-ordered (version 7, RFC 9562) UUIDs: 48 bits of milliseconds, then 74
    random bits, from a single read of the OS's random source.

    Time-ordered ids land at the right edge of the outbox's unique index instead of at random
    places in it: measured, that took SQLite's cost of an insert from ~23 to ~14 us. They are
    formatted without building ``uuid.UUID`` objects, a measurable cost per request too.
    """
    stamp = f"{(now_ms() if at is None else at) & (2**48 - 1):012x}"
    digits = os.urandom(10 * count).hex()
    ids = []
    for start in range(0, 20 * count, 20):
        r = digits[start : start + 20]
        # Version 7 in the 13th digit; the variant (10xx) in the 17th.
        variant = "89ab"[int(r[3], 16) & 3]
        ids.append(f"{stamp[:8]}-{stamp[8:]}-7{r[:3]}-{variant}{r[4:7]}-{r[7:19]}")
    return ids


@dataclass(frozen=True)
class NewEvent:
    """An event ready to insert: its payload is the exact JSON that Inngest will receive."""

    id: str
    name: str
    created_at: int
    payload: str
    replay_of: str | None = None
    env: str | None = None  # the Inngest environment it goes to (None: the key's own)


# What orjson does not take (integers beyond 64 bits, keys that are not strings, lone
# surrogates) goes through the standard library's encoder, built once: json.dumps with
# options builds a new one on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Compact JSON (UTF-8 text, no spaces), the one serialization of events and documents.

    orjson first: it encodes an event ten times faster than the standard library (0.6 against
    6 us for 1 KB), which is a tenth of what ``POST /e/{key}`` costs the server per event."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value)


# Every event of ``POST /api`` carries this name: encoded once, not once per event.
EVENT_NAME_JSON = dumps(EVENT_NAME)


def new_event(
    data: Mapping[str, Any],
    user: Mapping[str, Any] | None,
    ts_ms: int,
    name: str = EVENT_NAME,
    event_id: str | None = None,
) -> NewEvent:
    """Build the design's event: id, name, v, ts, data and (when there is one) user."""
    return new_event_from_json(dumps(data), user, ts_ms, name, event_id)


def new_event_from_json(
    data_json: str,
    user: Mapping[str, Any] | None,
    ts_ms: int,
    name: str = EVENT_NAME,
    event_id: str | None = None,
    replay_of: str | None = None,
) -> NewEvent:
    """Like ``new_event`` with ``data`` already serialized (a batch shares one settings read)."""
    shell = event_shell(user, ts_ms, name, event_id)
    return NewEvent(shell.id, name, ts_ms, shell.head + data_json + shell.tail, replay_of)


@dataclass(frozen=True, slots=True)
class EventShell:
    """An event whose ``data`` is still to come: its payload is ``head + data + tail``.

    The group commit fills the data in SQL, from the settings row its own statement reads: the
    settings need not come back to Python first, and every event of a batch shares them."""

    id: str
    created_at: int
    head: str
    tail: str


def event_shell(
    user: Mapping[str, Any] | None,
    ts_ms: int,
    name: str = EVENT_NAME,
    event_id: str | None = None,
) -> EventShell:
    """The design's event (id, name, v, ts, data and, when there is one, user) around its data."""
    event_id = event_id or new_ids(1)[0]
    name_json = EVENT_NAME_JSON if name == EVENT_NAME else dumps(name)
    head = f'{{"id":"{event_id}","name":{name_json},"v":"{EVENT_VERSION}","ts":{ts_ms},"data":'
    tail = f',"user":{dumps(user)}}}' if user is not None else "}"
    return EventShell(event_id, ts_ms, head, tail)


async def add(conn: AsyncConnection, events: Sequence[NewEvent]) -> None:
    """Insert events as pending, due now, in the caller's transaction; wake listening relays."""
    if not events:
        return
    await conn.execute(
        insert(t),
        [
            {
                "id": e.id,
                "name": e.name,
                "payload": e.payload,
                "status": PENDING,
                "attempts": 0,
                "created_at": e.created_at,
                "next_attempt_at": e.created_at,
                "replay_of": e.replay_of,
                "env": e.env,
            }
            for e in events
        ],
    )
    await notify_relays(conn)


async def notify_relays(conn: AsyncConnection) -> None:
    """Wake relays that LISTEN (PostgreSQL; delivered at commit, once per transaction however
    many rows it wrote); on SQLite relays find new rows at their next poll."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


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
    """
    until = now + lease_ms
    if early:
        free = or_(t.c.locked_until.is_(None), t.c.locked_until <= now)
    else:
        free = t.c.next_attempt_at <= now
    due = (
        select(t.c.seq)
        .where(status_is(PENDING), free)
        .order_by(t.c.next_attempt_at, t.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(t)
        .where(t.c.seq.in_(due))
        .values(locked_by=relay_id, locked_until=until, next_attempt_at=until)
        .returning(
            t.c.seq, t.c.id, t.c.payload, t.c.attempts, t.c.created_at, t.c.first_failed_at, t.c.env
        )
    )
    async with single_statement(engine) as conn:
        rows = (await conn.execute(statement)).all()
    claimed = [
        ClaimedRow(seq, event_id, payload.encode(), attempts, created_at, failed_at, env)
        for seq, event_id, payload, attempts, created_at, failed_at, env in rows
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


def _seq_in(conn: AsyncConnection, seqs: list[int]) -> ColumnElement[bool]:
    """``seq IN (...)``; on PostgreSQL one array parameter (``= ANY``) instead of one parameter
    per row, which spares a statement of a new shape (and a new prepare) per batch size."""
    if conn.dialect.name == "postgresql":
        return t.c.seq == any_(literal(seqs, ARRAY(BigInteger)))
    return t.c.seq.in_(seqs)


async def record(engine: AsyncEngine, relay_id: str, outcome: BatchOutcome, now: int) -> None:
    """Write a batch's outcome. Only rows still leased to ``relay_id`` are rescheduled or
    buried; a delivery is recorded whoever holds the row, since it did reach Inngest."""
    held = and_(t.c.seq == bindparam("b_seq"), status_is(PENDING), t.c.locked_by == relay_id)
    unlock = {"locked_by": None, "locked_until": None}
    failed = outcome.retries or outcome.burials or outcome.released
    # The usual outcome, every row delivered, is one statement: no explicit transaction.
    async with (transaction if failed else single_statement)(engine) as conn:
        if outcome.delivered:
            await conn.execute(
                update(t)
                .where(_seq_in(conn, outcome.delivered), status_is(PENDING))
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
                    _seq_in(conn, outcome.released),
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


async def next_due_at(engine: AsyncEngine) -> int | None:
    """When the earliest pending row falls due (epoch ms), or None when nothing is pending."""
    async with reading(engine) as conn:
        value = await conn.scalar(select(func.min(t.c.next_attempt_at)).where(status_is(PENDING)))
    return None if value is None else int(value)
