"""The relay sends each claimed batch as one request per Inngest environment, with
``x-inngest-env`` naming it (none for rows without one)."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.events import payload
from service.events.ids import now_ms
from service.store import deliveries
from tests.fake_inngest import running_fake
from tests.relay_harness import EVENT_KEY, relay_settings, running_relay, settled


async def test_one_request_per_environment(settings: Settings, engine: AsyncEngine) -> None:
    at = now_ms()
    envs = [None, "br-1", None, "br-2", "br-1", None]
    events = [
        payload.NewEvent(f"id-{n}", "app/e", at, payload.dumps({"name": "app/e", "n": n}), env=env)
        for n, env in enumerate(envs)
    ]
    async with engine.begin() as conn:
        await deliveries.add(conn, events)
    async with running_fake(event_key=EVENT_KEY) as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
    sent = {
        record.headers.get("x-inngest-env"): [event["n"] for event in json.loads(record.body)]
        for record in fake.requests
    }
    assert len(fake.requests) == 3
    assert sent == {None: [0, 2, 5], "br-1": [1, 4], "br-2": [3]}
