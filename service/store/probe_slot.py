"""The relays' shared probe during an outage (the one row of ``relay_probe``).

While Inngest fails every request, each relay asks for the probe's turn before it sends its
one small batch: the turn goes to one relay per interval, however many share the database, so
N relays make one probe per interval between them, not N. A probe that gets through stamps
``recovered_at``, which tells every other relay that the outage is over.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.engine import transaction
from service.store.tables import RELAY_PROBE_ROW, relay_probe

__all__ = [
    "ProbeTurn",
    "record_recovery",
    "take_turn",
]

p = relay_probe.c


@dataclass(frozen=True)
class ProbeTurn:
    """The answer to "may I probe now?"."""

    ours: bool  # this relay probes now; the next turn is ``next_at``
    next_at: int  # epoch ms of the next turn
    recovered_at: int | None  # when a probe last got through (any relay's)


async def take_turn(engine: AsyncEngine, now: int, interval_ms: int) -> ProbeTurn:
    """Take the probe's turn if it is free (the next one then comes ``interval_ms`` later)."""
    async with transaction(engine) as conn:
        won = (
            await conn.execute(
                update(relay_probe)
                .where(p.id == RELAY_PROBE_ROW, p.next_probe_at <= now)
                .values(next_probe_at=now + interval_ms)
                .returning(p.recovered_at)
            )
        ).first()
        if won is not None:
            return ProbeTurn(True, now + interval_ms, won.recovered_at)
        row = (
            await conn.execute(
                select(p.next_probe_at, p.recovered_at).where(p.id == RELAY_PROBE_ROW)
            )
        ).first()
    if row is None:
        # The row is gone (a hand-made schema): every relay probes on its own schedule.
        return ProbeTurn(True, now + interval_ms, None)
    return ProbeTurn(False, int(row.next_probe_at), row.recovered_at)


async def record_recovery(engine: AsyncEngine, now: int) -> None:
    """A probe got through: the outage is over for every relay; the next one starts afresh."""
    async with transaction(engine) as conn:
        await conn.execute(
            update(relay_probe)
            .where(p.id == RELAY_PROBE_ROW)
            .values(recovered_at=now, next_probe_at=0, outage_since=None, outage_error=None)
        )
