"""Delivery through outages, on a clock the test moves: hours of Inngest failing cost the rows
nothing, probes stay bounded, recovery is at once, a flaky Event API is not a dead one, and
only a time budget (or Inngest's own refusal) makes a row dead.

Everything but time is real: the database of each backend, the stand-in Event API over HTTP,
the relay's own loop. The relays run on a ``ManualClock``; ``drive`` jumps it forward whenever
every task of the relay is asleep.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import InngestSettings, RelaySettings, Settings
from service.metrics import Metrics
from service.relay.deliverer import Deliverer
from service.relay.health import OUTAGE_AFTER, Health
from service.relay.inngest_client import InngestClient
from service.store import outbox_stats
from service.store.deliveries import ClaimedRow
from tests.fake_inngest import Answer, FakeInngest, running_fake
from tests.manual_clock import ManualClock, drive
from tests.relay_harness import relay_settings, rows_by_id, running_relay, seed, settled, statuses

HOUR = 3600.0
DEFAULTS = RelaySettings()
# A relay's tasks when nothing can happen but time: its workers and its housekeeping.
ASLEEP = DEFAULTS.concurrency + 1


def defaults(settings: Settings, fake: FakeInngest, **changes: object) -> Settings:
    """The relay's default settings (not the fast ones of the other relay tests)."""
    defaults_now = {f: getattr(DEFAULTS, f) for f in DEFAULTS.__dataclass_fields__}
    return relay_settings(settings, fake.origin, **{**defaults_now, **changes})


def went_on_for(clock: ManualClock, seconds: float) -> Callable[[], Awaitable[bool]]:
    deadline = clock.monotonic() + seconds

    async def done() -> bool:
        return clock.monotonic() >= deadline

    return done


def requests_between(fake: FakeInngest, first: int) -> int:
    return len(fake.requests) - first


@pytest.mark.parametrize("backend", ["sqlite"])  # hours of probes: the SQL is covered below
async def test_a_six_hour_outage_loses_nothing_and_recovery_is_at_once(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.relay")
    ids = await seed(engine, 40)
    clock, metrics = ManualClock(), Metrics()
    async with running_fake(default=Answer.server_error(503)) as fake:
        async with running_relay(defaults(settings, fake), engine, metrics, clock):
            await drive(clock, ASLEEP, went_on_for(clock, 6 * HOUR), within=7 * HOUR)
            assert metrics.outage._value.get() == 1
            during = len(fake.requests)
            # Bounded by the probe interval: at most one request every RELAY_PROBE_MAX, after
            # the few that made the outage and the first, shorter probe intervals.
            assert during <= 6 * HOUR / DEFAULTS.probe_max + OUTAGE_AFTER + 10
            assert set((await statuses(engine)).values()) == {"pending"}

            fake.default = Answer.ok()
            took = await drive(clock, ASLEEP, lambda: settled(engine), within=HOUR)
            assert took <= DEFAULTS.probe_max + 1
            assert metrics.outage._value.get() == 0
        assert set(fake.received_ids) == set(ids)
    rows = await rows_by_id(engine)
    assert {r["status"] for r in rows.values()} == {"delivered"}
    # The rows the probes carried are the only ones whose attempts moved.
    probed = {i for request in fake.requests[OUTAGE_AFTER:during] for i in _ids(request)}
    untouched = [r for i, r in rows.items() if i not in probed and r["attempts"] > 1]
    assert len(untouched) <= DEFAULTS.concurrency * DEFAULTS.batch_size
    recovered = [r for r in caplog.records if getattr(r, "action", "") == "relay.recovered"]
    assert len(recovered) == 1
    # It began once OUTAGE_AFTER requests in a row had failed, within the first minute.
    assert recovered[0].outage_seconds >= 6 * HOUR - 60  # type: ignore[attr-defined]
    # Every event waited; the probe that got through was delivered just before the count.
    assert recovered[0].events_waiting >= len(ids) - 1  # type: ignore[attr-defined]
    started = [r for r in caplog.records if getattr(r, "action", "") == "relay.outage"]
    assert len(started) == 1


def _ids(request: object) -> list[str]:
    return [str(event["id"]) for event in request.events]  # type: ignore[attr-defined]


async def test_an_outage_past_the_time_budget_buries_with_the_reason(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 3)
    clock = ManualClock()
    async with running_fake(default=Answer.server_error(502)) as fake:
        tuned = defaults(settings, fake, give_up_after=600.0)
        async with running_relay(tuned, engine, clock=clock):
            await drive(clock, ASLEEP, lambda: settled(engine), within=2 * HOUR)
    rows = await rows_by_id(engine)
    assert {r["status"] for r in rows.values()} == {"dead"}
    for row in rows.values():
        assert re.match(r"gave up: failing for 1\dm \d+s since 20", row["last_error"])
        assert "RELAY_GIVE_UP_AFTER" in row["last_error"]
        assert "last error: HTTP 502" in row["last_error"]
        assert row["completed_at"] - row["first_failed_at"] >= 600_000


@pytest.mark.parametrize(("budget", "dead"), [(None, False), (3 * 86400.0, True)])
async def test_a_row_failing_for_years_is_dead_only_under_a_budget(
    budget: float | None, dead: bool
) -> None:
    clock = ManualClock()
    ten_years_ago = clock.now_ms() - 10 * 365 * 86400 * 1000
    row = ClaimedRow(1, "e1", b'{"id":"e1"}', 4000, ten_years_ago, ten_years_ago)
    async with (
        running_fake(default=Answer.server_error(500)) as fake,
        aiohttp.ClientSession() as http,
    ):
        inngest = InngestSettings(origin=fake.origin, event_key="k", dev_mode=False)
        relay = RelaySettings(give_up_after=budget)
        health = Health(relay, Metrics(), clock)
        deliverer = Deliverer(InngestClient(inngest, http), relay, Metrics(), health, clock)
        outcome = await deliverer.deliver([row], clock.monotonic() + 60)
    assert [b.seq for b in outcome.burials] == ([1] if dead else [])
    assert [r.seq for r in outcome.retries] == ([] if dead else [1])


async def test_a_flaky_event_api_is_not_an_outage(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.relay")
    ids = await seed(engine, 60)
    clock = ManualClock()

    def every_other(index: int, _events: object) -> Answer | None:
        return Answer.server_error(500) if index % 2 == 0 else None

    async with running_fake(policy=every_other) as fake:
        tuned = defaults(settings, fake, batch_size=5)
        async with running_relay(tuned, engine, clock=clock):
            took = await drive(clock, ASLEEP, lambda: settled(engine), within=HOUR)
        assert set(fake.received_ids) == set(ids)
    assert "relay.outage" not in [getattr(r, "action", "") for r in caplog.records]
    # Half the requests fail; the rows they carried wait a second or so, never minutes.
    assert took < 60
    assert set((await statuses(engine)).values()) == {"delivered"}


async def test_a_429_slows_the_whole_relay_for_its_retry_after(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 20)
    clock = ManualClock()
    sent_before: dict[float, int] = {}  # clock seconds -> requests made before then
    async with running_fake() as fake:
        fake.enqueue(Answer.rate_limited("30"))
        started = clock.monotonic()

        async def count() -> None:  # runs at each jump, before the relay wakes
            sent_before[clock.monotonic() - started] = len(fake.requests)

        tuned = defaults(settings, fake, batch_size=5)
        async with running_relay(tuned, engine, clock=clock):
            await drive(clock, ASLEEP, lambda: settled(engine), within=HOUR, step=count)
        assert fake.statuses[0] == 429
    # Up to the 30th second nothing was sent but what the other worker had sent already.
    assert 30.0 in sent_before
    assert all(n <= DEFAULTS.concurrency for at, n in sent_before.items() if at <= 30.0)
    rows = await rows_by_id(engine)
    assert {r["status"] for r in rows.values()} == {"delivered"}
    assert {r["attempts"] for r in rows.values()} == {1}  # a rate limit is not an attempt


async def test_relays_sharing_a_database_take_turns_to_probe(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 30)
    clock = ManualClock()
    async with running_fake(default=Answer.connection_reset()) as fake:
        tuned = defaults(settings, fake)
        async with (
            running_relay(tuned, engine, clock=clock),
            running_relay(tuned, engine, clock=clock),
            running_relay(tuned, engine, clock=clock),
        ):
            await drive(clock, 3 * ASLEEP, went_on_for(clock, 60), within=120)  # all see it
            first = len(fake.requests)
            await drive(clock, 3 * ASLEEP, went_on_for(clock, 1200), within=HOUR)
            # One probe per interval among the three, not three.
            assert requests_between(fake, first) <= 1200 / DEFAULTS.probe_max + 3

            fake.default = Answer.ok()
            took = await drive(clock, 3 * ASLEEP, lambda: settled(engine), within=HOUR)
            assert took <= DEFAULTS.probe_max + 1


async def test_stats_say_how_long_the_oldest_retrying_row_has_failed(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 2)
    clock = ManualClock()
    async with running_fake(default=Answer.server_error(503)) as fake:
        async with running_relay(defaults(settings, fake), engine, clock=clock):
            await drive(clock, ASLEEP, went_on_for(clock, 1800), within=HOUR)
    stats = await outbox_stats.stats(engine, now=clock.now_ms())
    assert stats.oldest_failing_since is not None
    assert clock.now_ms() - stats.oldest_failing_since >= 1790_000
