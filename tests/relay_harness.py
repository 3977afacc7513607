"""Helpers for relay tests: seed the outbox, read row states, run a relay on a clock the test
moves until a condition holds.

A relay under test runs on a ``ManualClock``: its pauses, backoffs, leases and polls are the
clock's, which moves only while every task of the relay is asleep on it (``RelayRun.until``).
The database and HTTP run for real. So a test asserts what the relay did, never how fast the
machine was: "nothing else happened while paused" is the clock not having passed the pause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import InngestSettings, RelaySettings, Settings
from service.events import payload
from service.events.ids import now_ms
from service.events.inngest_ids import new_run
from service.metrics import Metrics
from service.relay.clock import Clock, SystemClock
from service.relay.loop import Relay, inngest_client, run_relay
from service.store import deliveries
from service.store.backend import backend_of
from service.store.backends.base import POLLING, Listener
from service.store.tables import outbox_events
from tests.manual_clock import ManualClock, all_asleep, drive

EVENT_KEY = "relay-test-key-5f3a9c"
HOUR = 3600.0
# A request to the fake Inngest answers in milliseconds; this much real time is only a failure
# detector (a busy machine answers in well under a tenth of it). Tests of timeouts set their own.
REQUEST_TIMEOUT = 5.0

FAST_RELAY = RelaySettings(
    batch_size=100,
    max_attempts=50,
    backoff_base=0.01,
    backoff_max=0.05,
    # On the test's clock: a lease runs out only when the test moves the clock past it.
    lease_seconds=60.0,
    poll_interval=0.05,
    # One worker, one request at a time: scripted answers then meet the batches and their
    # requests in a known order (two workers may split a batch between them, two requests
    # race). Tests of concurrency ask for more.
    concurrency=1,
    requests_in_flight=1,
)


def relay_settings(
    settings: Settings, origin: str, *, request_timeout: float = REQUEST_TIMEOUT, **relay: Any
) -> Settings:
    """``settings`` pointed at a fake Inngest, with fast retries (overridable)."""
    return settings.replace(
        inngest=InngestSettings(
            origin=origin, event_key=EVENT_KEY, dev_mode=False, request_timeout=request_timeout
        ),
        relay=dataclasses.replace(FAST_RELAY, **relay),
    )


async def seed(
    engine: AsyncEngine, count: int, data: Callable[[int], dict[str, Any]] | None = None
) -> list[str]:
    """Insert ``count`` pending events, one run of Inngest ids; return their ids in order."""
    at = now_ms()
    events = [
        payload.new_event(data(n) if data else {"n": n}, {"id": f"u{n}"}, at, event_id=event_id)
        for n, event_id in enumerate(new_run(count, at))
    ]
    async with engine.begin() as conn:
        await deliveries.add(conn, events)
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


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Wait in real time until ``condition()`` holds, for what runs on the real clock (other
    processes); ``timeout`` only detects a failure, so it is generous."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class RelayRun:
    """A relay and its housekeeping running on ``clock``, which the test moves."""

    relay: Relay
    clock: ManualClock

    @property
    def sleepers(self) -> int:
        """The tasks asleep on the clock when nothing but time can happen: the workers and
        the housekeeping."""
        return self.relay.settings.concurrency + 1

    async def until(
        self,
        condition: Callable[[], Awaitable[bool]],
        *,
        within: float = 600.0,
        step: Callable[[], Awaitable[None]] | None = None,
    ) -> float:
        """Move the clock whenever every task is asleep, until ``condition()`` holds; return
        the clock's seconds that took (fails past ``within`` of them)."""
        return await drive(self.clock, self.sleepers, condition, within=within, step=step)

    def passed(self, seconds: float) -> Callable[[], Awaitable[bool]]:
        """A condition for ``until``: the clock has moved ``seconds`` on from now."""
        deadline = self.clock.monotonic() + seconds

        async def done() -> bool:
            return self.clock.monotonic() >= deadline

        return done

    async def quiet(self) -> None:
        """Wait until every task is asleep on the clock: what can happen without the clock
        moving has happened."""
        await all_asleep(self.clock, self.sleepers)


@asynccontextmanager
async def running_relay(
    settings: Settings,
    engine: AsyncEngine,
    metrics: Metrics | None = None,
    clock: ManualClock | None = None,
) -> AsyncIterator[RelayRun]:
    """A relay with its housekeeping, running in this event loop on ``clock`` (a new
    ``ManualClock`` when none is given); stopped on exit."""
    clock = clock or ManualClock()
    async with _relay(settings, engine, metrics or Metrics(), clock) as relay:
        yield RelayRun(relay, clock)


@asynccontextmanager
async def relay_in_background(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Relay]:
    """A relay on the real clock, delivering while the test drives other processes (an SDK,
    a service, an app's transactions) in real time, woken as ``service relay`` is (PostgreSQL's
    NOTIFY; SQLite polls); stopped on exit."""
    async with _relay(settings, engine, Metrics(), SystemClock(), listen=True) as relay:
        yield relay


@asynccontextmanager
async def _relay(
    settings: Settings, engine: AsyncEngine, metrics: Metrics, clock: Clock, *, listen: bool = False
) -> AsyncIterator[Relay]:
    stop, wake = asyncio.Event(), asyncio.Event()
    async with (
        inngest_client(settings) as client,
        backend_of(engine).listen(wake) if listen else _polling() as listener,
    ):
        relay = Relay(settings, engine, client, metrics, clock=clock, wake=wake, listener=listener)
        task = asyncio.create_task(run_relay(relay, stop))
        try:
            yield relay
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=60)


@asynccontextmanager
async def _polling() -> AsyncIterator[Listener]:
    yield POLLING
