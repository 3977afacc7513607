"""What the console's overview draws, from the outbox itself (no Prometheus needed): events
accepted and delivered per minute with the delivery lag, and the relays that hold leases."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.deliveries import status_is
from service.store.engine import reading
from service.store.statuses import DELIVERED, PENDING
from service.store.tables import outbox_events

__all__ = ["MINUTE_MS", "Minute", "RelayLeases", "per_minute", "relay_leases"]

t = outbox_events
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Minute:
    """One minute (its start, epoch ms): events accepted, delivered, and the delivered ones'
    lag from acceptance to delivery (ms; None when none was delivered)."""

    start: int
    accepted: int = 0
    delivered: int = 0
    mean_lag: float | None = None
    max_lag: int | None = None


async def per_minute(engine: AsyncEngine, since: int, now: int) -> list[Minute]:
    """Every minute from the one ``since`` falls in to the one ``now`` does, oldest first.

    Accepted rows are counted through the index of ``created_at``, delivered ones through the
    index of completed rows."""
    first = since - since % MINUTE_MS
    accepted_minute = (t.c.created_at // MINUTE_MS).label("minute")
    delivered_minute = (t.c.completed_at // MINUTE_MS).label("minute")
    lag = t.c.completed_at - t.c.created_at
    async with reading(engine) as conn:
        accepted = await conn.execute(
            select(accepted_minute, func.count())
            .where(t.c.created_at >= first, t.c.created_at <= now)
            .group_by(accepted_minute)
        )
        counts = {int(minute): int(n) for minute, n in accepted}
        delivered = await conn.execute(
            select(delivered_minute, func.count(), func.avg(lag), func.max(lag))
            .where(t.c.completed_at >= first, t.c.completed_at <= now, status_is(DELIVERED))
            .group_by(delivered_minute)
        )
        done = {int(row[0]): row[1:] for row in delivered}
    minutes = []
    for minute in range(first // MINUTE_MS, now // MINUTE_MS + 1):
        n, mean, longest = done.get(minute, (0, None, None))
        minutes.append(
            Minute(
                start=minute * MINUTE_MS,
                accepted=counts.get(minute, 0),
                delivered=int(n),
                mean_lag=None if mean is None else float(mean),
                max_lag=None if longest is None else int(longest),
            )
        )
    return minutes


@dataclass(frozen=True)
class RelayLeases:
    """A relay that holds rows now: how many, and until when its last lease runs."""

    relay: str
    rows: int
    until: int


async def relay_leases(engine: AsyncEngine, now: int) -> list[RelayLeases]:
    """The relays holding pending rows at ``now`` (a lease is ``relay/claim``), busiest first."""
    async with reading(engine) as conn:
        leases = await conn.execute(
            select(t.c.locked_by, func.count(), func.max(t.c.locked_until))
            .where(status_is(PENDING), t.c.locked_until > now)
            .group_by(t.c.locked_by)
        )
        held: dict[str, tuple[int, int]] = {}
        for lease, rows, until in leases:
            relay = str(lease).rpartition("/")[0] or str(lease)
            before_rows, before_until = held.get(relay, (0, 0))
            held[relay] = (before_rows + int(rows), max(before_until, int(until)))
    return sorted(
        (RelayLeases(relay, rows, until) for relay, (rows, until) in held.items()),
        key=lambda lease: (-lease.rows, lease.relay),
    )
