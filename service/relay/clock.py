"""The relay's sense of time: wall-clock milliseconds for the database, a monotonic clock for
pauses, and sleeping. One object, so that tests can run hours of an outage in a second with a
clock they move themselves: the relay reads time and waits only through it, except for two
readings that must be real (how long a request to Inngest took, for the metrics, and a
``Retry-After`` date, read against the real date the server wrote it by)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from service.events.ids import now_ms


class Clock(Protocol):
    """What the relay asks of time."""

    def now_ms(self) -> int:
        """Wall-clock time in epoch milliseconds (the outbox's unit)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for pauses and deadlines."""

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock."""


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return now_ms()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def sleep_unless(clock: Clock, seconds: float, *events: asyncio.Event) -> None:
    """Sleep ``seconds`` of ``clock``, or less if one of ``events`` is set meanwhile."""
    if any(event.is_set() for event in events):
        return
    waits: list[asyncio.Future[object]] = [asyncio.ensure_future(clock.sleep(seconds))]
    waits += [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
