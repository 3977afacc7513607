"""The outbox's inspection and repair SQL: gauges, stats, list, show, replay, purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import RelaySettings
from service.db import now_ms, reading, transaction
from service.models import DEAD, DELIVERED, PENDING, outbox_events

t = outbox_events


@dataclass(frozen=True)
class GaugeSnapshot:
    """The outbox figures that metrics expose, each read through an index."""

    pending: int
    dead: int
    oldest_pending_age: float


async def gauge_snapshot(engine: AsyncEngine) -> GaugeSnapshot:
    async with reading(engine) as conn:
        pending = await conn.scalar(select(func.count()).where(t.c.status == PENDING))
        dead = await conn.scalar(select(func.count()).where(t.c.status == DEAD))
        oldest = await conn.scalar(select(func.min(t.c.created_at)).where(t.c.status == PENDING))
    age = 0.0 if oldest is None else max(0.0, (now_ms() - int(oldest)) / 1000)
    return GaugeSnapshot(int(pending or 0), int(dead or 0), age)


PURGE_BATCH = 1000


async def purge(
    engine: AsyncEngine, status: str, older_than_ms: int, batch: int = PURGE_BATCH
) -> AsyncIterator[int]:
    """Delete ``status`` rows completed more than ``older_than_ms`` ago, in bounded batches
    (one short transaction each, so no lock is held for long); yields each batch's count."""
    cutoff = now_ms() - older_than_ms
    while True:
        chosen = (
            select(t.c.seq)
            .where(t.c.status == status, t.c.completed_at < cutoff)
            .limit(batch)
            .scalar_subquery()
        )
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
