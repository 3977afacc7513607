"""The group commit's rows, written by the raw drivers, equal to ``outbox.add``'s."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.events import payload
from service.store import deliveries, settings_store
from service.store.backend import backend_for
from service.store.batch_writes import Written
from service.store.tables import outbox_events


async def test_the_batch_store_writes_the_rows_outbox_add_writes(
    settings: Settings, engine: AsyncEngine
) -> None:
    document = {"a": 1, "text": 'é \\ " ✓'}
    async with engine.begin() as conn:
        await settings_store.replace(conn, document, 1_700_000_000_000)
    user = {"id": "u", "email": "u@example.com"}
    first = payload.new_event(document, user, 1_700_000_000_000)
    second = payload.new_event(document, user, 1_700_000_000_001)
    third = payload.new_event(document, None, 1_700_000_000_002)
    async with engine.begin() as conn:
        await deliveries.add(conn, [first])
    store = backend_for(settings).open_batch_store()
    try:
        shells = [
            payload.event_shell(user, second.created_at, event_id=second.id),
            payload.event_shell(None, third.created_at, event_id=third.id),
        ]
        assert await store.write([], shells, []) == Written()
    finally:
        await store.close()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))).all()
    via_add, *via_store = (dict(row._mapping) for row in rows)
    for row in (via_add, *via_store):
        del row["seq"], row["id"], row["payload"], row["created_at"], row["next_attempt_at"]
        del row["inngest_id"]
    assert via_store == [via_add, via_add]
    # The service's own events: the id it made is the one Inngest will give them.
    assert [row.inngest_id for row in rows] == [row.id for row in rows]
    assert [row.id for row in rows[1:]] == [second.id, third.id]
    assert [row.payload for row in rows[1:]] == [second.payload, third.payload]
    for row, event in zip(rows[1:], (second, third), strict=True):
        assert row.next_attempt_at == row.created_at == event.created_at


def complete_event(n: int, env: str | None = None) -> payload.NewEvent:
    event_id = f"01KB0000000000000000000{n:03d}"
    body = payload.dumps({"name": f"app/e{n}", "data": {"n": n}, "id": event_id, "ts": n})
    return payload.NewEvent(event_id, f"app/e{n}", 1_700_000_000_000 + n, body, env=env)


async def test_complete_events_are_stored_as_outbox_add_stores_them(
    settings: Settings, engine: AsyncEngine
) -> None:
    first, second, third = complete_event(1, "branch-1"), complete_event(2), complete_event(3)
    async with engine.begin() as conn:
        await deliveries.add(conn, [first])
    store = backend_for(settings).open_batch_store()
    try:
        assert await store.write([], [], [second, third]) == Written(new_events=2)
    finally:
        await store.close()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))).all()
    for row, event in zip(rows, (first, second, third), strict=True):
        assert (row.id, row.name, row.payload, row.env) == (
            event.id,
            event.name,
            event.payload,
            event.env,
        )
        assert row.created_at == row.next_attempt_at == event.created_at
        assert (row.status, row.attempts, row.replay_of) == ("pending", 0, None)


async def test_a_batch_of_both_kinds_is_one_transaction_and_repeats_are_left_out(
    settings: Settings, engine: AsyncEngine
) -> None:
    store = backend_for(settings).open_batch_store()
    try:
        stored = [complete_event(1), complete_event(2)]
        assert await store.write([], [], stored) == Written(new_events=2)
        shell = payload.event_shell(None, 1_700_000_000_000)
        # The repeat of event 2 and a new event 3, twice over in the same batch.
        again = [complete_event(2), complete_event(3), complete_event(3)]
        assert await store.write([], [shell], again) == Written(new_events=1)
    finally:
        await store.close()
    async with engine.connect() as conn:
        ids = (await conn.scalars(select(outbox_events.c.id).order_by(outbox_events.c.seq))).all()
    assert sorted(ids) == sorted([shell.id, *(complete_event(n).id for n in (1, 2, 3))])
