"""Delivery's state that the relays share (``relay_probe``'s row): an operator's pause holds
every relay and a resume lets them go; an outage and a refused event key are recorded, with
their time and error, and cleared when they end. The relays run on a ``ManualClock``: ten minutes
of pause pass in a moment, and "nothing was sent" means nothing in those minutes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.events.ids import now_ms
from service.store import attempt_history, delivery_state
from service.store.tables import outbox_events
from tests.fake_inngest import Answer, running_fake
from tests.manual_clock import ManualClock, drive
from tests.relay_harness import (
    EVENT_KEY,
    FAST_RELAY,
    relay_settings,
    running_relay,
    seed,
    settled,
    statuses,
)

HOUR = 3600.0
# The harness's one worker and the housekeeping, each asleep on the clock between steps.
ASLEEP = FAST_RELAY.concurrency + 1


def went_on_for(clock: ManualClock, seconds: float) -> Callable[[], Awaitable[bool]]:
    deadline = clock.monotonic() + seconds

    async def done() -> bool:
        return clock.monotonic() >= deadline

    return done


async def test_a_pause_holds_every_relay_until_resumed(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="service.relay")
    assert await delivery_state.pause(engine, "alice", now_ms())
    assert not await delivery_state.pause(engine, "bob", now_ms())  # paused already: unchanged
    ids = await seed(engine, 5)
    clock = ManualClock()
    async with running_fake(event_key=EVENT_KEY) as fake:
        tuned = relay_settings(settings, fake.origin)
        async with running_relay(tuned, engine, clock=clock):
            await drive(clock, ASLEEP, went_on_for(clock, 10 * 60), within=HOUR)
            assert fake.requests == []
            assert set((await statuses(engine)).values()) == {"pending"}
            assert await delivery_state.resume(engine)
            await drive(clock, ASLEEP, lambda: settled(engine), within=60)
        assert sorted(fake.received_ids) == sorted(ids)
    paused = [r for r in caplog.records if getattr(r, "action", "") == "relay.paused"]
    resumed = [r for r in caplog.records if getattr(r, "action", "") == "relay.resumed"]
    assert len(paused) == 1 and "alice" in paused[0].getMessage()
    assert len(resumed) == 1
    assert not await delivery_state.resume(engine)


@pytest.mark.parametrize("backend", ["sqlite"])  # the SQL is the pause test's, on both
async def test_an_outage_is_recorded_until_a_probe_gets_through(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 3)
    clock = ManualClock()
    async with running_fake(event_key=EVENT_KEY, default=Answer.server_error(503)) as fake:
        tuned = relay_settings(settings, fake.origin)

        async def outage_recorded() -> bool:
            return (await delivery_state.read_state(engine)).outage_since is not None

        async with running_relay(tuned, engine, clock=clock):
            await drive(clock, ASLEEP, outage_recorded, within=HOUR)
            state = await delivery_state.read_state(engine)
            assert "503" in (state.outage_error or "")
            fake.default = Answer.ok()
            await drive(clock, ASLEEP, lambda: settled(engine), within=HOUR)
    state = await delivery_state.read_state(engine)
    assert state.outage_since is None and state.outage_error is None
    assert state.recovered_at is not None
    # Each failed request is in its rows' history, with Inngest's status code.
    attempts = [
        a for seq in await seqs(engine) for a in await attempt_history.attempts_of(engine, seq)
    ]
    assert attempts and {a.status_code for a in attempts} == {503}
    assert all("503" in a.error for a in attempts)


async def seqs(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(outbox_events.c.seq))).scalars())


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_refused_key_is_recorded_until_a_request_goes_through(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 3)
    clock = ManualClock()
    async with running_fake(event_key="another-key-entirely") as fake:
        tuned = relay_settings(settings, fake.origin)

        async def refusal_recorded() -> bool:
            return (await delivery_state.read_state(engine)).key_refused_since is not None

        async with running_relay(tuned, engine, clock=clock):
            await drive(clock, ASLEEP, refusal_recorded, within=HOUR)
            first = (await delivery_state.read_state(engine)).key_refused_since
            assert "401" in ((await delivery_state.read_state(engine)).key_refused_error or "")
            fake.event_key = EVENT_KEY
            await drive(clock, ASLEEP, lambda: settled(engine), within=HOUR)
            assert first is not None
    state = await delivery_state.read_state(engine)
    assert state.key_refused_since is None and state.key_refused_error is None
