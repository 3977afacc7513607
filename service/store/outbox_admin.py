"""The outbox's inspection and repair SQL: list, show, replay, purge (its figures are in
``outbox_stats``).

Every query here is served by an index of ``tables.py`` or is bounded (a LIMIT, a keyset page).
Writes run in
short transactions of at most a batch of rows, so an operator's repair never holds the lock
that ``POST /api`` and the relays need for long.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, and_, delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import RelaySettings
from service.errors import InvalidInput, NotFound
from service.events.ids import now_ms
from service.events.inngest_ids import new_run
from service.events.payload import resent_event
from service.events.trace import TraceContext
from service.store.deliveries import add, notify_relays, status_is
from service.store.engine import reading, transaction
from service.store.event_filter import Cursor, EventFilter
from service.store.statuses import DEAD, DELIVERED, PENDING
from service.store.tables import outbox_attempts, outbox_events

__all__ = [
    "EventRow",
    "ReplayAction",
    "ReplayResult",
    "apply_retention",
    "count_completed_before",
    "count_events",
    "count_purgeable",
    "get_event",
    "list_events",
    "mark_dead",
    "purge",
    "purge_completed_before",
    "replay_dead",
    "replay_ids",
]

t = outbox_events


# -- list and show --------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    """One outbox row as an operator sees it; ``payload`` is None in listings."""

    seq: int
    id: str
    name: str
    status: str
    attempts: int
    created_at: int
    next_attempt_at: int
    completed_at: int | None
    locked_by: str | None
    locked_until: int | None
    last_error: str | None
    replay_of: str | None
    first_failed_at: int | None = None
    env: str | None = None
    inngest_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    payload: str | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> EventRow:
        # The fields an operator sees; columns kept for the relay's own use are left out.
        mapping = row._mapping
        values: dict[str, Any] = {f.name: mapping.get(f.name) for f in fields(cls)}
        return cls(**values)


_SUMMARY = [c for c in t.c if c.name != "payload"]


async def list_events(
    engine: AsyncEngine,
    where: EventFilter,
    limit: int,
    after: Cursor | None = None,
    *,
    preview_chars: int = 0,
) -> list[EventRow]:
    """The newest ``limit`` rows matching ``where`` (older than ``after``), newest first;
    with ``preview_chars``, ``payload`` holds that much of the start of each payload.

    Ordered by ``(created_at, seq)``: each filter has an index in that order, so a page reads
    about its own rows, however deep it is."""
    conditions = where.conditions()
    if after is not None:
        conditions.append(tuple_(t.c.created_at, t.c.seq) < tuple_(*after))
    columns: list[ColumnElement[Any]] = list(_SUMMARY)
    if preview_chars:
        columns.append(func.substr(t.c.payload, 1, preview_chars).label("payload"))
    statement = (
        select(*columns)
        .where(*conditions)
        .order_by(t.c.created_at.desc(), t.c.seq.desc())
        .limit(limit)
    )
    async with reading(engine) as conn:
        return [EventRow.from_row(row) for row in await conn.execute(statement)]


async def get_event(engine: AsyncEngine, event_id: str) -> EventRow:
    """The row of ``event_id`` with its payload; ``NotFound`` when there is none."""
    async with reading(engine) as conn:
        row = (await conn.execute(select(t).where(t.c.id == event_id))).first()
    if row is None:
        raise NotFound(f"no event with id {event_id}")
    return EventRow.from_row(row)


async def count_events(engine: AsyncEngine, where: EventFilter) -> int:
    """How many rows match ``where`` (a progress bar's total)."""
    async with reading(engine) as conn:
        count = await conn.scalar(select(func.count()).where(*where.conditions()))
    return int(count or 0)


# -- replay ---------------------------------------------------------------------------------

REPLAY_BATCH = 500


class ReplayAction(enum.Enum):
    """What replaying one row did (or, in a dry run, would do)."""

    REQUEUED = "requeued"  # dead (or delivered, asked so) -> pending, same ids, attempts 0
    RESENT = "resent"  # delivered: a new pending row under new ids, replay_of = the old id
    ALREADY_PENDING = "already_pending"  # refused: it is queued already
    NOT_FOUND = "not_found"  # refused: no such id


@dataclass(frozen=True)
class ReplayResult:
    id: str
    action: ReplayAction
    new_id: str | None = None  # RESENT (None in a dry run)
    dry_run: bool = False


UNLOCKED: dict[str, Any] = {"locked_by": None, "locked_until": None}


def _requeue(seqs: Sequence[int], at: int, *statuses: str) -> Any:
    """The rows ``seqs`` (of ``statuses``, default dead) back to pending, due ``at``."""
    return (
        update(t)
        .where(t.c.seq.in_(seqs), status_is(*(statuses or (DEAD,))))
        .values(
            status=PENDING,
            attempts=0,
            next_attempt_at=at,
            completed_at=None,
            first_failed_at=None,
            **UNLOCKED,
        )
        .returning(t.c.id)
    )


async def replay_ids(
    engine: AsyncEngine,
    ids: Sequence[str],
    *,
    dry_run: bool = False,
    batch: int = REPLAY_BATCH,
    same_id: bool = False,
) -> AsyncIterator[list[ReplayResult]]:
    """Replay the named rows, ``batch`` ids per transaction; yields each batch's results in
    the order the ids were given. Dead rows are requeued, delivered rows re-sent under new
    ids (Inngest's too), or with ``same_id`` requeued as they are (Inngest then takes them for
    the event it had already, which runs no function again), pending rows and unknown ids
    refused."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        done: dict[str, ReplayResult] = {}
        if dry_run:
            async with reading(engine) as conn:
                found = await _rows_for_replay(conn, chunk, lock=False)
        else:
            async with transaction(engine) as conn:
                found = await _rows_for_replay(conn, chunk, lock=True)
                done = await _apply_replay(conn, found, same_id)
        results = []
        for event_id in chunk:
            row = found.get(event_id)
            if row is None:
                results.append(ReplayResult(event_id, ReplayAction.NOT_FOUND, dry_run=dry_run))
            elif row.status == PENDING:
                results.append(ReplayResult(event_id, ReplayAction.ALREADY_PENDING, None, dry_run))
            elif dry_run:
                requeued = row.status == DEAD or same_id
                action = ReplayAction.REQUEUED if requeued else ReplayAction.RESENT
                results.append(ReplayResult(event_id, action, None, True))
            else:
                results.append(done[event_id])
        yield results


class _Stored(NamedTuple):
    seq: int
    id: str
    name: str
    status: str
    payload: str
    env: str | None
    traceparent: str | None
    tracestate: str | None

    @property
    def trace(self) -> TraceContext | None:
        return None if self.traceparent is None else TraceContext(self.traceparent, self.tracestate)


async def _rows_for_replay(
    conn: AsyncConnection, ids: Sequence[str], *, lock: bool
) -> dict[str, _Stored]:
    columns = (
        t.c.seq,
        t.c.id,
        t.c.name,
        t.c.status,
        t.c.payload,
        t.c.env,
        t.c.traceparent,
        t.c.tracestate,
    )
    statement = select(*columns).where(t.c.id.in_(ids))
    if lock:
        # A concurrent replay of the same delivered row waits, then sees the same row: two
        # operators re-sending at once each get their copy, as each asked. (SQLite renders no
        # FOR UPDATE: its write transaction holds the one write lock from its start.)
        statement = statement.with_for_update()
    return {row.id: _Stored(*row) for row in await conn.execute(statement)}


async def _apply_replay(
    conn: AsyncConnection, rows: dict[str, _Stored], same_id: bool
) -> dict[str, ReplayResult]:
    at = now_ms()
    done: dict[str, ReplayResult] = {}
    again = (DEAD, DELIVERED) if same_id else (DEAD,)
    dead = [row.seq for row in rows.values() if row.status in again]
    if dead:
        for event_id in (await conn.execute(_requeue(dead, at, *again))).scalars():
            done[event_id] = ReplayResult(event_id, ReplayAction.REQUEUED)
    delivered = [row for row in rows.values() if row.status == DELIVERED and not same_id]
    # The copies are one run: new ids that are Inngest's too, sent in few requests.
    copies = [
        resent_event(row.payload, row.name, new_id, at, row.id, row.env, row.trace)
        for row, new_id in zip(delivered, new_run(len(delivered), at), strict=True)
    ]
    await add(conn, copies)  # wakes listening relays
    for copy in copies:
        assert copy.replay_of is not None
        done[copy.replay_of] = ReplayResult(copy.replay_of, ReplayAction.RESENT, copy.id)
    if dead and not copies:
        await notify_relays(conn)
    return done


async def replay_dead(
    engine: AsyncEngine, where: EventFilter, *, dry_run: bool = False, batch: int = REPLAY_BATCH
) -> AsyncIterator[list[ReplayResult]]:
    """Requeue every dead row matching ``where`` (its status is forced to dead), oldest
    first, one transaction per ``batch`` rows. Keyset pages on ``seq``: a row requeued and
    buried again while this runs is not taken a second time."""
    conditions = replace(where, status=DEAD).conditions()
    after = 0
    while True:
        page = (
            select(t.c.seq, t.c.id)
            .where(*conditions, t.c.seq > after)
            .order_by(t.c.seq)
            .limit(batch)
        )
        if dry_run:
            async with reading(engine) as conn:
                chosen = (await conn.execute(page)).all()
            ids = [row.id for row in chosen]
        else:
            async with transaction(engine) as conn:
                chosen = (await conn.execute(page)).all()
                ids = []
                if chosen:
                    requeued = await conn.execute(_requeue([row.seq for row in chosen], now_ms()))
                    ids = list(requeued.scalars())
                    await notify_relays(conn)
        if ids:
            yield [ReplayResult(i, ReplayAction.REQUEUED, dry_run=dry_run) for i in ids]
        if len(chosen) < batch:
            return
        after = chosen[-1].seq


# -- mark dead ------------------------------------------------------------------------------


async def mark_dead(engine: AsyncEngine, ids: Sequence[str], reason: str) -> list[str]:
    """Bury the pending rows of ``ids`` (an operator gives up on them), with ``reason`` as
    their last error; returns the ids buried. A row a relay is sending right now may still
    reach Inngest: the relay's record of it then finds the row dead and leaves it so."""
    if not ids:
        return []
    async with transaction(engine) as conn:
        buried = await conn.execute(
            update(t)
            .where(t.c.id.in_(list(ids)), status_is(PENDING))
            .values(status=DEAD, completed_at=now_ms(), last_error=reason, **UNLOCKED)
            .returning(t.c.id)
        )
        return list(buried.scalars())


# -- purge ----------------------------------------------------------------------------------

PURGE_BATCH = 1000


def _purgeable(status: str, cutoff: int) -> ColumnElement[bool]:
    if status not in (DELIVERED, DEAD):
        # Pending rows are acknowledged events not yet delivered: never purged.
        raise InvalidInput(f"only delivered and dead rows can be purged, not {status!r}")
    return and_(status_is(status), t.c.completed_at < cutoff)


async def count_purgeable(engine: AsyncEngine, status: str, older_than_ms: int) -> int:
    """How many rows ``purge`` would remove now (through ix_outbox_events_completed)."""
    return await count_completed_before(engine, status, now_ms() - older_than_ms)


async def count_completed_before(engine: AsyncEngine, status: str, cutoff: int) -> int:
    """How many ``status`` rows were completed before ``cutoff`` (epoch ms)."""
    async with reading(engine) as conn:
        count = await conn.scalar(select(func.count()).where(_purgeable(status, cutoff)))
    return int(count or 0)


async def purge(
    engine: AsyncEngine, status: str, older_than_ms: int, batch: int = PURGE_BATCH
) -> AsyncIterator[int]:
    """Delete ``status`` rows completed more than ``older_than_ms`` ago, in bounded batches
    (one short transaction each, so no lock is held for long); yields each batch's count."""
    async for count in purge_completed_before(engine, status, now_ms() - older_than_ms, batch):
        yield count


async def purge_completed_before(
    engine: AsyncEngine, status: str, cutoff: int, batch: int = PURGE_BATCH
) -> AsyncIterator[int]:
    """``purge`` with its cutoff as a moment (epoch ms) rather than an age."""
    condition = _purgeable(status, cutoff)
    while True:
        chosen = select(t.c.seq).where(condition).limit(batch)
        async with transaction(engine) as conn:
            seqs = list((await conn.execute(chosen)).scalars())
            if seqs:
                await conn.execute(
                    delete(outbox_attempts).where(outbox_attempts.c.event_seq.in_(seqs))
                )
            removed = (await conn.execute(delete(t).where(t.c.seq.in_(seqs)))).rowcount
        if not removed:
            return
        yield removed
        if removed < batch:
            return


async def apply_retention(engine: AsyncEngine, settings: RelaySettings) -> int:
    """Purge what the retention settings no longer keep; return how many rows went."""
    removed = 0
    for status, keep in (
        (DELIVERED, settings.delivered_retention),
        (DEAD, settings.dead_retention),
    ):
        if keep is not None:
            async for count in purge(engine, status, int(keep * 1000)):
                removed += count
    return removed
