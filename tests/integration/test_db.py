"""The connection helpers of ``service.store.engine``."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.events import payload
from service.store.engine import reading, single_statement
from service.store.tables import outbox_events


async def count(engine: AsyncEngine) -> int:
    async with reading(engine) as conn:
        return int(await conn.scalar(select(func.count()).select_from(outbox_events)) or 0)


async def test_a_single_statement_is_its_own_transaction(engine: AsyncEngine) -> None:
    event = payload.new_event({}, None, 1_700_000_000_000)
    async with single_statement(engine) as conn:
        await conn.execute(
            outbox_events.insert().values(
                id=event.id,
                name=event.name,
                payload=event.payload,
                status="pending",
                attempts=0,
                created_at=event.created_at,
                next_attempt_at=event.created_at,
            )
        )
        # Committed as it ran: no BEGIN before it holds the write lock, no COMMIT is waited for.
        assert await count(engine) == 1
