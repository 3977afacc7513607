"""Each failed attempt at delivering a row, as ``deliveries.record`` keeps them, read back for
the console's page of an event (``outbox_admin.purge`` removes them with their rows)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.store.engine import reading
from service.store.tables import outbox_attempts

__all__ = ["Attempt", "attempts_of"]


@dataclass(frozen=True)
class Attempt:
    """A failed attempt: when, Inngest's status code (None: no answer came), and the error."""

    at: int
    status_code: int | None
    error: str


async def attempts_of(engine: AsyncEngine, seq: int) -> list[Attempt]:
    """The failed attempts of the row ``seq``, oldest first."""
    a = outbox_attempts.c
    statement = select(a.at, a.status_code, a.error).where(a.event_seq == seq).order_by(a.at)
    async with reading(engine) as conn:
        return [Attempt(*row) for row in await conn.execute(statement)]
