"""The outbox's inspection and repair SQL: gauges, stats, list, show, replay, purge.

Every query here is served by an index of ``tables.py`` or is bounded (a LIMIT, a keyset page)
except the total count of ``stats``, which walks the smallest index once. Writes run in
short transactions of at most a batch of rows, so an operator's repair never holds the lock
that ``POST /api`` and the relays need for long.
"""

from __future__ import annotations

import collections
import enum
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import RelaySettings
from service.errors import InvalidInput, NotFound
from service.store.engine import now_ms, reading, transaction
from service.store.outbox import NewEvent, add, dumps, new_ids, notify_relays, status_is
from service.store.tables import DEAD, DELIVERED, PENDING, outbox_events

t = outbox_events


@dataclass(frozen=True)
class GaugeSnapshot:
    """The outbox figures that metrics expose, each read through an index."""

    pending: int
    dead: int
    oldest_pending_age: float


async def gauge_snapshot(engine: AsyncEngine) -> GaugeSnapshot:
    async with reading(engine) as conn:
        pending = await conn.scalar(select(func.count()).where(status_is(PENDING)))
        dead = await conn.scalar(select(func.count()).where(status_is(DEAD)))
        oldest = await conn.scalar(select(func.min(t.c.created_at)).where(status_is(PENDING)))
    age = 0.0 if oldest is None else max(0.0, (now_ms() - int(oldest)) / 1000)
    return GaugeSnapshot(int(pending or 0), int(dead or 0), age)


# -- stats ------------------------------------------------------------------------------------

ATTEMPT_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-5", 3, 5),
    ("6-10", 6, 10),
    ("11+", 11, None),
)
TOP_ERRORS = 5


def attempt_bucket(attempts: int) -> str:
    """The label of the bucket ``attempts`` falls in."""
    for label, low, high in ATTEMPT_BUCKETS:
        if attempts >= low and (high is None or attempts <= high):
            return label
    return ATTEMPT_BUCKETS[0][0]  # negative counts do not happen; keep the function total


@dataclass(frozen=True)
class OutboxStats:
    """What ``service outbox stats`` shows, as of ``at`` (epoch ms)."""

    at: int
    counts: dict[str, int]
    oldest_pending_at: int | None
    due_now: int  # pending rows a relay may claim now
    leased: int  # pending rows a relay holds (being sent now)
    scheduled_later: int  # pending rows waiting for a retry's backoff
    attempts: dict[str, dict[str, int]]  # bucket -> {"pending": n, "dead": n}
    top_errors: list[tuple[str, int]]  # last_error -> rows, among pending and dead
    # When the pending row that has been failing longest failed first (None: none is failing).
    oldest_failing_since: int | None = None

    @property
    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending row was accepted; None when nothing is pending."""
        if self.oldest_pending_at is None:
            return None
        return max(0.0, (self.at - self.oldest_pending_at) / 1000)

    @property
    def oldest_failing_for(self) -> float | None:
        """Seconds the longest-failing pending row has been failing; None when none is."""
        if self.oldest_failing_since is None:
            return None
        return max(0.0, (self.at - self.oldest_failing_since) / 1000)


async def stats(engine: AsyncEngine, now: int | None = None) -> OutboxStats:
    """Counts by state, the pending rows' schedule, attempts and the commonest errors."""
    at = now_ms() if now is None else now
    async with reading(engine) as conn:
        # Pending and dead rows through their partial indexes, all rows through the smallest
        # index; the CHECK constraint allows no fourth state, so the rest are delivered.
        pending = int(await conn.scalar(select(func.count()).where(status_is(PENDING))) or 0)
        dead = int(await conn.scalar(select(func.count()).where(status_is(DEAD))) or 0)
        total = int(await conn.scalar(select(func.count()).select_from(t)) or 0)
        counts = {PENDING: pending, DELIVERED: total - pending - dead, DEAD: dead}
        # Pending rows only: the partial indexes keep this away from the delivered rows.
        due, leased, oldest, failing_since = (
            await conn.execute(
                select(
                    func.count().filter(t.c.next_attempt_at <= at),
                    func.count().filter(t.c.next_attempt_at > at, t.c.locked_until > at),
                    func.min(t.c.created_at),
                    func.min(t.c.first_failed_at),
                ).where(status_is(PENDING))
            )
        ).one()
        attempts: dict[str, dict[str, int]] = {
            label: {PENDING: 0, DEAD: 0} for label, _low, _high in ATTEMPT_BUCKETS
        }
        error_counts: collections.Counter[str] = collections.Counter()
        # One state at a time, so that each query reads that state's partial index only.
        for status in (PENDING, DEAD):
            # Grouped by the raw count (a few distinct values) and bucketed here: a CASE in
            # both SELECT and GROUP BY is not portable once its literals become parameters.
            rows = await conn.execute(
                select(t.c.attempts, func.count()).where(status_is(status)).group_by(t.c.attempts)
            )
            for tries, n in rows:
                attempts[attempt_bucket(int(tries))][status] += int(n)
            errors = await conn.execute(
                select(t.c.last_error, func.count())
                .where(status_is(status), t.c.last_error.is_not(None))
                .group_by(t.c.last_error)
            )
            error_counts.update({str(error): int(n) for error, n in errors})
        top_errors = sorted(error_counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_ERRORS]
    return OutboxStats(
        at=at,
        counts=counts,
        oldest_pending_at=None if oldest is None else int(oldest),
        due_now=int(due or 0),
        leased=int(leased or 0),
        scheduled_later=counts[PENDING] - int(due or 0) - int(leased or 0),
        attempts=attempts,
        top_errors=top_errors,
        oldest_failing_since=None if failing_since is None else int(failing_since),
    )


# -- list and show --------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which rows an operator means. Times are epoch ms of ``created_at``: since <= t < until."""

    status: str | None = None
    name: str | None = None
    since: int | None = None
    until: int | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.status is not None:
            conditions.append(status_is(self.status))
        if self.name is not None:
            conditions.append(t.c.name == self.name)
        if self.since is not None:
            conditions.append(t.c.created_at >= self.since)
        if self.until is not None:
            conditions.append(t.c.created_at < self.until)
        return conditions


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
    payload: str | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> EventRow:
        # The fields an operator sees; columns kept for the relay's own use are left out.
        mapping = row._mapping
        values: dict[str, Any] = {f.name: mapping.get(f.name) for f in fields(cls)}
        return cls(**values)


_SUMMARY = [c for c in t.c if c.name != "payload"]


async def list_events(engine: AsyncEngine, where: EventFilter, limit: int) -> list[EventRow]:
    """The newest ``limit`` rows matching ``where``, newest first.

    Ordered by ``seq`` (the primary key serves it): there is no index on ``created_at`` for
    delivered and dead rows, but ``seq`` grows with it, so the newest rows come first."""
    statement = select(*_SUMMARY).where(*where.conditions()).order_by(t.c.seq.desc()).limit(limit)
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

    REQUEUED = "requeued"  # dead -> pending, same id, attempts 0, due now
    RESENT = "resent"  # delivered: a new pending row under a new id, replay_of = the old id
    ALREADY_PENDING = "already_pending"  # refused: it is queued already
    NOT_FOUND = "not_found"  # refused: no such id


@dataclass(frozen=True)
class ReplayResult:
    id: str
    action: ReplayAction
    new_id: str | None = None  # RESENT (None in a dry run)
    dry_run: bool = False


def resent_event(
    original_payload: str, name: str, new_id: str, at: int, of: str, env: str | None = None
) -> NewEvent:
    """A copy of a stored event under ``new_id``, for the same environment: only the payload's
    ``id`` changes (``ts`` is still the original acceptance time); the row itself is accepted
    ``at``, due at once."""
    document = json.loads(original_payload)
    if not isinstance(document, dict):
        raise InvalidInput(f"event {of} has a payload that is not a JSON object")
    document["id"] = new_id  # keeps the key's position: dicts keep their order
    return NewEvent(new_id, name, at, dumps(document), replay_of=of, env=env)


UNLOCKED: dict[str, Any] = {"locked_by": None, "locked_until": None}


def _requeue(seqs: Sequence[int], at: int) -> Any:
    return (
        update(t)
        .where(t.c.seq.in_(seqs), status_is(DEAD))
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
    engine: AsyncEngine, ids: Sequence[str], *, dry_run: bool = False, batch: int = REPLAY_BATCH
) -> AsyncIterator[list[ReplayResult]]:
    """Replay the named rows, ``batch`` ids per transaction; yields each batch's results in
    the order the ids were given. Dead rows are requeued, delivered rows re-sent under a new
    id, pending rows and unknown ids refused."""
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
                done = await _apply_replay(conn, found)
        results = []
        for event_id in chunk:
            row = found.get(event_id)
            if row is None:
                results.append(ReplayResult(event_id, ReplayAction.NOT_FOUND, dry_run=dry_run))
            elif row.status == PENDING:
                results.append(ReplayResult(event_id, ReplayAction.ALREADY_PENDING, None, dry_run))
            elif dry_run:
                action = ReplayAction.REQUEUED if row.status == DEAD else ReplayAction.RESENT
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


async def _rows_for_replay(
    conn: AsyncConnection, ids: Sequence[str], *, lock: bool
) -> dict[str, _Stored]:
    columns = (t.c.seq, t.c.id, t.c.name, t.c.status, t.c.payload, t.c.env)
    statement = select(*columns).where(t.c.id.in_(ids))
    if lock and conn.dialect.name == "postgresql":
        # A concurrent replay of the same delivered row waits, then sees the same row: two
        # operators re-sending at once each get their copy, as each asked.
        statement = statement.with_for_update()
    return {row.id: _Stored(*row) for row in await conn.execute(statement)}


async def _apply_replay(conn: AsyncConnection, rows: dict[str, _Stored]) -> dict[str, ReplayResult]:
    at = now_ms()
    done: dict[str, ReplayResult] = {}
    dead = [row.seq for row in rows.values() if row.status == DEAD]
    if dead:
        for event_id in (await conn.execute(_requeue(dead, at))).scalars():
            done[event_id] = ReplayResult(event_id, ReplayAction.REQUEUED)
    copies = [
        resent_event(row.payload, row.name, new_ids(1)[0], at, row.id, row.env)
        for row in rows.values()
        if row.status == DELIVERED
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
    conditions = [*EventFilter(DEAD, where.name, where.since, where.until).conditions()]
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


# -- purge ----------------------------------------------------------------------------------

PURGE_BATCH = 1000


def _purgeable(status: str, cutoff: int) -> ColumnElement[bool]:
    if status not in (DELIVERED, DEAD):
        # Pending rows are acknowledged events not yet delivered: never purged.
        raise InvalidInput(f"only delivered and dead rows can be purged, not {status!r}")
    return and_(status_is(status), t.c.completed_at < cutoff)


async def count_purgeable(engine: AsyncEngine, status: str, older_than_ms: int) -> int:
    """How many rows ``purge`` would remove now (through ix_outbox_events_completed)."""
    condition = _purgeable(status, now_ms() - older_than_ms)
    async with reading(engine) as conn:
        count = await conn.scalar(select(func.count()).where(condition))
    return int(count or 0)


async def purge(
    engine: AsyncEngine, status: str, older_than_ms: int, batch: int = PURGE_BATCH
) -> AsyncIterator[int]:
    """Delete ``status`` rows completed more than ``older_than_ms`` ago, in bounded batches
    (one short transaction each, so no lock is held for long); yields each batch's count."""
    condition = _purgeable(status, now_ms() - older_than_ms)
    while True:
        chosen = select(t.c.seq).where(condition).limit(batch).scalar_subquery()
        async with transaction(engine) as conn:
            removed = (await conn.execute(delete(t).where(t.c.seq.in_(chosen)))).rowcount
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
