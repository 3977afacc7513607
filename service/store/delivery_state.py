"""Delivery's state that every relay of a database shares, in ``relay_probe``'s one row: an
operator's pause, and the outage or refused event key the relays see.

An operator pauses delivery for all relays at once (the console, ``service outbox pause``): a
relay reads the row before it claims, at most once a ``PAUSE_CHECK_INTERVAL``, and claims
nothing while it is paused. The relays record when an outage began and when Inngest refused
the key, so that a person sees since when, and why, nothing is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.deliveries import notify_relays
from service.store.engine import reading, transaction
from service.store.tables import RELAY_PROBE_ROW, relay_probe

__all__ = [
    "PAUSE_CHECK_INTERVAL",
    "DeliveryState",
    "key_accepted",
    "key_refused",
    "outage_began",
    "pause",
    "read_state",
    "resume",
]

p = relay_probe.c
# Seconds a relay goes on trusting what it read of the pause: the delay before a pause holds.
PAUSE_CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class DeliveryState:
    """What the row says; times are epoch ms, None where nothing is the matter."""

    paused_at: int | None = None
    paused_by: str | None = None
    outage_since: int | None = None
    outage_error: str | None = None
    key_refused_since: int | None = None
    key_refused_error: str | None = None
    recovered_at: int | None = None


async def read_state(engine: AsyncEngine) -> DeliveryState:
    """The shared state (all None on a hand-made schema without the row)."""
    columns = (
        p.paused_at,
        p.paused_by,
        p.outage_since,
        p.outage_error,
        p.key_refused_since,
        p.key_refused_error,
        p.recovered_at,
    )
    async with reading(engine) as conn:
        row = (await conn.execute(select(*columns).where(p.id == RELAY_PROBE_ROW))).first()
    return DeliveryState() if row is None else DeliveryState(*row)


async def pause(engine: AsyncEngine, by: str, now: int) -> bool:
    """Pause delivery for every relay; False when it was paused already (then unchanged)."""
    async with transaction(engine) as conn:
        changed = await conn.execute(
            update(relay_probe)
            .where(p.id == RELAY_PROBE_ROW, p.paused_at.is_(None))
            .values(paused_at=now, paused_by=by)
        )
    return bool(changed.rowcount)


async def resume(engine: AsyncEngine) -> bool:
    """Let the relays deliver again, woken at once; False when delivery was not paused."""
    async with transaction(engine) as conn:
        changed = await conn.execute(
            update(relay_probe)
            .where(p.id == RELAY_PROBE_ROW, p.paused_at.is_not(None))
            .values(paused_at=None, paused_by=None)
        )
        if changed.rowcount:
            await notify_relays(conn)
    return bool(changed.rowcount)


async def outage_began(engine: AsyncEngine, since: int, error: str) -> None:
    """A relay sees an outage since ``since``; the earliest relay's time and error stand until
    a probe gets through (``probe_slot.record_recovery`` clears them)."""
    async with transaction(engine) as conn:
        await conn.execute(
            update(relay_probe)
            .where(p.id == RELAY_PROBE_ROW, p.outage_since.is_(None))
            .values(outage_since=since, outage_error=error)
        )


async def key_refused(engine: AsyncEngine, at: int, error: str) -> None:
    """Inngest refused the event key; the first refusal's time stands, the error is the last."""
    async with transaction(engine) as conn:
        await conn.execute(
            update(relay_probe)
            .where(p.id == RELAY_PROBE_ROW)
            .values(
                key_refused_since=func.coalesce(p.key_refused_since, at),
                key_refused_error=error,
            )
        )


async def key_accepted(engine: AsyncEngine) -> None:
    """A request went through with the key after refusals: the refusal is over."""
    async with transaction(engine) as conn:
        await conn.execute(
            update(relay_probe)
            .where(p.id == RELAY_PROBE_ROW, p.key_refused_since.is_not(None))
            .values(key_refused_since=None, key_refused_error=None)
        )
