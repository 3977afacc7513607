"""The outbox's figures: the gauges that metrics expose and what ``service outbox stats``
shows. Every query is served by an index of ``tables.py`` except the total count of ``stats``,
which walks the smallest index once, and the intake's figures (a table that relays keep near
empty). Events still in the intake count as pending, due now, never tried."""

from __future__ import annotations

import collections
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.events.ids import now_ms
from service.store.deliveries import free_at, intake_figures, status_is
from service.store.engine import reading
from service.store.statuses import DEAD, DELIVERED, PENDING
from service.store.tables import outbox_events

__all__ = [
    "ATTEMPT_BUCKETS",
    "GaugeSnapshot",
    "OutboxStats",
    "attempt_bucket",
    "gauge_snapshot",
    "stats",
]

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
        intake = await intake_figures(conn)
    oldest = intake.oldest_with(oldest)
    age = 0.0 if oldest is None else max(0.0, (now_ms() - oldest) / 1000)
    return GaugeSnapshot(int(pending or 0) + intake.rows, int(dead or 0), age)


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
        intake = await intake_figures(conn)
        pending = int(await conn.scalar(select(func.count()).where(status_is(PENDING))) or 0)
        dead = int(await conn.scalar(select(func.count()).where(status_is(DEAD))) or 0)
        total = int(await conn.scalar(select(func.count()).select_from(t)) or 0)
        counts = {
            PENDING: pending + intake.rows,
            DELIVERED: total - pending - dead,
            DEAD: dead,
        }
        # Pending rows only: the partial indexes keep this away from the delivered rows.
        due, leased, oldest, failing_since = (
            await conn.execute(
                select(
                    func.count().filter(t.c.next_attempt_at <= at, free_at(at)),
                    func.count().filter(t.c.locked_until > at),
                    func.min(t.c.created_at),
                    func.min(t.c.first_failed_at),
                ).where(status_is(PENDING))
            )
        ).one()
        attempts: dict[str, dict[str, int]] = {
            label: {PENDING: 0, DEAD: 0} for label, _low, _high in ATTEMPT_BUCKETS
        }
        attempts[attempt_bucket(0)][PENDING] += intake.rows
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
        oldest_pending_at=intake.oldest_with(oldest),
        due_now=int(due or 0) + intake.rows,
        leased=int(leased or 0),
        scheduled_later=pending - int(due or 0) - int(leased or 0),
        attempts=attempts,
        top_errors=top_errors,
        oldest_failing_since=None if failing_since is None else int(failing_since),
    )
