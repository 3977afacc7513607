"""The overview's figures, read from the outbox at most once every few seconds per process.

A full read counts every row of the outbox and groups the errors (a few hundred milliseconds at
a million rows), and each open console asks again every 10 s: the figures are shared by every
console of the process while they are fresh, one read at a time, and an action taken here
forgets them so that its effect shows at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from service.events.ids import now_ms
from service.http.console.chart import Chart, draw
from service.store import delivery_history, delivery_state, outbox_stats
from service.store.statuses import DEAD, DELIVERED, PENDING

__all__ = ["FRESH_SECONDS", "Figures", "OverviewFigures"]

# How long figures serve before the next request reads them again: half the page's refresh.
FRESH_SECONDS = 5.0
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Figures:
    """What the overview shows, as of ``stats.at``."""

    stats: outbox_stats.OutboxStats
    counts: list[tuple[str, str, int]]  # (label, the event list's state filter, events)
    state: delivery_state.DeliveryState
    leases: list[delivery_history.RelayLeases]
    minutes: list[delivery_history.Minute]
    chart: Chart


async def read_figures(engine: AsyncEngine, now: int) -> Figures:
    """The overview's figures, read now."""
    stats = await outbox_stats.stats(engine, now)
    retrying = sum(
        by_state[PENDING] for bucket, by_state in stats.attempts.items() if bucket != "0"
    )
    minutes = await delivery_history.per_minute(engine, now - HOUR_MS, now)
    return Figures(
        stats=stats,
        counts=[
            ("Pending", PENDING, stats.counts[PENDING]),
            ("In flight", "in_flight", stats.leased),
            ("Retrying", "retrying", retrying),
            ("Delivered", DELIVERED, stats.counts[DELIVERED]),
            ("Dead", DEAD, stats.counts[DEAD]),
        ],
        state=await delivery_state.read_state(engine),
        leases=await delivery_history.relay_leases(engine, now),
        minutes=minutes,
        chart=draw(minutes),
    )


class OverviewFigures:
    """The process's latest figures: read again when older than ``fresh_for`` seconds (of
    ``clock``) or forgotten; requests that come during a read wait for it."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        fresh_for: float = FRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._fresh_for = fresh_for
        self._clock = clock
        self._lock = asyncio.Lock()
        self._latest: Figures | None = None
        self._read_at = 0.0

    async def get(self) -> Figures:
        """Fresh figures: the latest ones while they are, else a new read."""
        async with self._lock:
            if self._latest is None or self._clock() - self._read_at >= self._fresh_for:
                self._latest = await read_figures(self._engine, now_ms())
                self._read_at = self._clock()
            return self._latest

    def forget(self) -> None:
        """Read again at the next request (an action changed what the figures show)."""
        self._latest = None
