"""A clock that tests move themselves: hours of a relay's life in a second of real time.

The relay reads time only through its ``Clock``; with a ``ManualClock`` its sleeps wait until
the test advances the clock past them. ``drive`` does that: whenever every task the test runs
is asleep on the clock (none is waiting on the database or on HTTP, which run for real), it
jumps to the earliest wake-up. Time moves only while nothing else can happen, so the relay sees
exactly the schedule it asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

# Real seconds a step may wait for the tasks to fall asleep: only a failure detector (a task
# stuck on something that never ends), so generous enough for a machine busy with other work.
REAL_WAIT = 60.0


class ManualClock:
    """Wall-clock milliseconds and monotonic seconds that move only when told."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = (time.time() * 1000 if start_ms is None else start_ms) / 1000
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._fell_asleep: asyncio.Event | None = None  # set whenever a task falls asleep

    def now_ms(self) -> int:
        return int(self._now * 1000)

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), waiter))
        self.fell_asleep.set()
        await waiter

    @property
    def fell_asleep(self) -> asyncio.Event:
        """Set whenever a task falls asleep on this clock (cleared by whoever waits for it)."""
        if self._fell_asleep is None:
            self._fell_asleep = asyncio.Event()
        return self._fell_asleep

    @property
    def next_wakeup(self) -> float | None:
        """When the earliest sleep ends (monotonic seconds), or None when nothing sleeps."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    @property
    def asleep(self) -> int:
        """How many sleeps are waiting (a cancelled sleep no longer counts)."""
        return sum(1 for *_, waiter in self._sleepers if not waiter.done())

    def advance(self) -> None:
        """Jump to the earliest wake-up and wake every sleep due by then."""
        self._drop_cancelled()
        if self._sleepers:
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()

    def pass_time(self, seconds: float) -> None:
        """Move the clock ``seconds`` on at once (as a slow request would), waking every sleep
        due by then."""
        self._now += seconds
        self._wake_due()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            *_, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


async def drive(
    clock: ManualClock,
    sleepers: int,
    until: Callable[[], Awaitable[bool]],
    *,
    within: float,
    step: Callable[[], Awaitable[None]] | None = None,
) -> float:
    """Advance ``clock`` whenever ``sleepers`` tasks are asleep on it, until ``until()`` holds;
    return the clock seconds that took. ``step`` runs at each jump (to change the scene).
    Fails when ``within`` clock seconds pass first."""
    started = clock.monotonic()
    while True:
        await _all_asleep(clock, sleepers)
        if await until():
            return clock.monotonic() - started
        if clock.monotonic() - started > within:
            raise AssertionError(f"not done within {within:g} clock seconds")
        clock.advance()
        if step is not None:
            await step()


async def all_asleep(clock: ManualClock, sleepers: int) -> None:
    """Return once ``sleepers`` tasks are asleep on ``clock``: nothing can happen now but time
    (the database and HTTP run for real, so this waits for them)."""
    await _all_asleep(clock, sleepers)


async def _all_asleep(clock: ManualClock, sleepers: int) -> None:
    deadline = time.monotonic() + REAL_WAIT
    while clock.asleep < sleepers or _runnable():
        if time.monotonic() > deadline:
            awake = "\n".join(_where_tasks_are())
            raise TimeoutError(
                f"{clock.asleep} of {sleepers} tasks asleep after {REAL_WAIT}s; tasks:\n{awake}"
            )
        if clock.asleep >= sleepers:
            # A task woken by an event just now (a wake-up, a stop) still has its sleep on the
            # clock until it runs: let everything runnable run, then look again.
            await asyncio.sleep(0)
            continue
        clock.fell_asleep.clear()
        # Woken by the next task that falls asleep (no polling while the others work).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await clock.fell_asleep.wait()


def _runnable() -> int:
    """How many callbacks the event loop has ready to run besides the one running now: none
    means every task waits (on the clock, or on I/O that has not answered yet)."""
    # The loop's own queue of ready callbacks: asyncio has no public way to ask for it.
    return len(asyncio.get_running_loop()._ready)  # type: ignore[attr-defined]


def _where_tasks_are() -> list[str]:
    """Each task's name and the innermost line it waits on, for a failure's message."""
    places = []
    for task in asyncio.all_tasks():
        awaiting: object = task.get_coro()
        place = "?"
        # Follow the chain of awaits down to the innermost coroutine that is suspended.
        while (frame := getattr(awaiting, "cr_frame", None)) is not None:
            place = f"{frame.f_code.co_filename}:{frame.f_lineno}"
            awaiting = getattr(awaiting, "cr_await", None)
        places.append(f"  {task.get_name()}: {place}")
    return places
