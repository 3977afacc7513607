"""The group commit's pieces: event ids, and the raw-driver rows equal to ``outbox.add``'s."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service import outbox
from service.batch_store import open_batch_store
from service.config import Settings
from service.models import outbox_events
from service.outbox import new_ids


def test_new_ids_are_distinct_time_ordered_uuids() -> None:
    at = 1_763_900_000_123
    ids = new_ids(2000, at=at)
    assert len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == at  # the first 48 bits: the milliseconds
    assert max(new_ids(50, at=at)) < min(new_ids(50, at=at + 1))


async def test_the_batch_store_writes_the_rows_outbox_add_writes(
    settings: Settings, engine: AsyncEngine
) -> None:
    first, second = (
        outbox.new_event({"a": 1}, {"id": "u"}, 1_700_000_000_000),
        outbox.new_event({"a": 1}, None, 1_700_000_000_001),
    )
    async with engine.begin() as conn:
        await outbox.add(conn, [first])
    store = open_batch_store(settings)
    try:
        assert await store.write([], lambda _settings_json, _held: [second]) == {}
    finally:
        await store.close()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))).all()
    via_add, via_store = (dict(row._mapping) for row in rows)
    for row in (via_add, via_store):
        del row["seq"], row["id"], row["payload"], row["created_at"], row["next_attempt_at"]
    assert via_add == via_store
    assert rows[1].payload == second.payload
    assert rows[1].next_attempt_at == rows[1].created_at == second.created_at
