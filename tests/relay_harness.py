"""Helpers for relay tests: seed the outbox, read row states, run a relay until a condition."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import InngestSettings, RelaySettings, Settings
from service.events import payload
from service.events.ids import now_ms
from service.metrics import Metrics
from service.relay.clock import Clock
from service.relay.loop import Relay, inngest_client, run_relay
from service.store import outbox
from service.store.tables import outbox_events

EVENT_KEY = "relay-test-key-5f3a9c"

FAST_RELAY = RelaySettings(
    batch_size=100,
    max_attempts=50,
    backoff_base=0.01,
    backoff_max=0.05,
    lease_seconds=2.0,
    poll_interval=0.05,
    # One worker: scripted answers then meet the batches in a known order (two workers may
    # split a batch between them). Tests of concurrency ask for more.
    concurrency=1,
)


def relay_settings(settings: Settings, origin: str, **relay: Any) -> Settings:
    """``settings`` pointed at a fake Inngest, with fast retries (overridable)."""
    return settings.replace(
        inngest=InngestSettings(
            origin=origin, event_key=EVENT_KEY, dev_mode=False, request_timeout=0.5
        ),
        relay=dataclasses.replace(FAST_RELAY, **relay),
    )


async def seed(
    engine: AsyncEngine, count: int, data: Callable[[int], dict[str, Any]] | None = None
) -> list[str]:
    """Insert ``count`` pending events; return their ids in order."""
    at = now_ms()
    events = [
        payload.new_event(data(n) if data else {"n": n}, {"id": f"u{n}"}, at) for n in range(count)
    ]
    async with engine.begin() as conn:
        await outbox.add(conn, events)
    return [event.id for event in events]


async def rows_by_id(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(outbox_events))
        return {row.id: dict(row._mapping) for row in result}


async def statuses(engine: AsyncEngine) -> dict[str, str]:
    return {event_id: row["status"] for event_id, row in (await rows_by_id(engine)).items()}


async def settled(engine: AsyncEngine) -> bool:
    """True when no row is pending."""
    return all(status != "pending" for status in (await statuses(engine)).values())


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_relay(
    settings: Settings,
    engine: AsyncEngine,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[Relay]:
    """A relay with its housekeeping, running in this event loop (on ``clock``, if given);
    stopped on exit."""
    stop = asyncio.Event()
    async with inngest_client(settings) as client:
        relay = Relay(settings, engine, client, metrics or Metrics(), clock=clock)
        task = asyncio.create_task(run_relay(relay, stop))
        try:
            yield relay
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
