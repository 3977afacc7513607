"""Every delivery rule, against a real fake Inngest and a real database on each backend."""

from __future__ import annotations

import dataclasses
import json
import logging
import random

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.events.ids import now_ms
from service.relay.health import KEY_PAUSE_FIRST, OUTAGE_AFTER
from service.store import deliveries
from service.store.outcomes import BatchOutcome, Retry
from tests.fake_inngest import Answer, FakeInngest, running_fake
from tests.manual_clock import ManualClock
from tests.relay_harness import (
    EVENT_KEY,
    relay_settings,
    rows_by_id,
    running_relay,
    seed,
    settled,
    statuses,
)


async def test_200_delivers_the_stored_events_exactly(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed(engine, 10)
    stored = {i: row["payload"] for i, row in (await rows_by_id(engine)).items()}
    async with running_fake(event_key=EVENT_KEY) as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
        assert fake.received_ids == ids
        assert [
            json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in fake.received
        ] == [stored[i] for i in ids]
        assert len(fake.requests) == 1
        assert fake.requests[0].headers["User-Agent"].startswith("service/")
    rows = await rows_by_id(engine)
    assert {r["status"] for r in rows.values()} == {"delivered"}
    assert all(r["attempts"] == 1 and r["locked_by"] is None for r in rows.values())
    assert all(r["completed_at"] >= r["created_at"] for r in rows.values())


async def test_200_with_text_content_type_still_delivers(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 3)
    async with running_fake(default=Answer.ok(content_type="text/plain")) as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
    assert set((await statuses(engine)).values()) == {"delivered"}


async def test_partial_400_delivers_prefix_buries_failed_and_resends_rest(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed(engine, 5)
    async with running_fake() as fake:
        fake.enqueue(Answer.partial(2, "data.plan: must be a string"))
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
        assert sorted(fake.received_ids) == sorted([ids[0], ids[1], ids[3], ids[4]])
    rows = await rows_by_id(engine)
    assert [rows[i]["status"] for i in ids] == [
        "delivered",
        "delivered",
        "dead",
        "delivered",
        "delivered",
    ]
    assert "data.plan: must be a string" in rows[ids[2]]["last_error"]
    assert rows[ids[3]]["attempts"] == 1  # never refused: the resend is its first real attempt


async def test_400_with_no_ids_accepted_buries_only_the_first(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed(engine, 3)
    async with running_fake() as fake:
        fake.enqueue(Answer.none_accepted("name is reserved"))
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
    assert [(await statuses(engine))[i] for i in ids] == ["dead", "delivered", "delivered"]


async def test_401_keeps_every_row_pending_and_pauses(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(engine, 4)
    async with running_fake(event_key="the-right-key-000") as fake:
        tuned = relay_settings(settings, fake.origin, backoff_max=60.0)
        async with running_relay(tuned, engine) as run:
            await run.until(lambda: _len_at_least(fake.requests, 1))
            await run.quiet()  # the outcome recorded, every task asleep: only time is left
            rows = await rows_by_id(engine)
            health = run.relay.health
            first_pause = health.paused_for()
            assert first_pause >= 1.0
            # Paused: no task wakes before the pause is over, so nothing is sent until then
            # (no hammering with a bad key).
            assert run.clock.next_wakeup is not None
            assert run.clock.next_wakeup >= health.paused_until
            assert len(fake.requests) == 1
            took = await run.until(lambda: _len_at_least(fake.requests, 2))
            await run.quiet()
            assert took >= first_pause
            assert health.paused_for() > first_pause  # refused again: a longer pause
    assert {r["status"] for r in rows.values()} == {"pending"}
    assert {r["attempts"] for r in rows.values()} == {0}
    assert all(r["locked_by"] is None for r in rows.values())
    assert all(r["next_attempt_at"] > now_ms() - 5000 for r in rows.values())
    refused = [r for r in caplog.records if getattr(r, "action", "") == "relay.unauthorized"]
    assert refused and "INNGEST_EVENT_KEY" in refused[0].getMessage()
    assert EVENT_KEY not in caplog.text


async def test_403_is_treated_like_401(settings: Settings, engine: AsyncEngine) -> None:
    await seed(engine, 2)
    async with running_fake(default=Answer.forbidden()) as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: _len_at_least(fake.requests, 1))
            await run.quiet()
            assert run.relay.health.paused_for() > 0
            assert await _unlocked(engine)
    assert set((await statuses(engine)).values()) == {"pending"}


async def test_413_splits_the_batch(settings: Settings, engine: AsyncEngine) -> None:
    ids = await seed(engine, 8)
    async with running_fake() as fake:
        fake.enqueue(Answer.payload_too_large(), Answer.payload_too_large())
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
        assert [len(r.events) for r in fake.requests] == [8, 4, 2, 2, 4]
        assert sorted(fake.received_ids) == sorted(ids)
    assert set((await statuses(engine)).values()) == {"delivered"}


async def test_an_event_too_large_alone_is_buried(settings: Settings, engine: AsyncEngine) -> None:
    ids = await seed(engine, 6, data=lambda n: {"big": n == 3})

    def refuse_big(_index: int, events: list[dict[str, object]]) -> Answer | None:
        for position, event in enumerate(events):
            if event["data"] == {"big": True}:
                return Answer.too_large(position)
        return None

    async with running_fake(policy=refuse_big) as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
    rows = await rows_by_id(engine)
    assert [rows[i]["status"] for i in ids] == ["delivered"] * 3 + ["dead"] + ["delivered"] * 2
    assert "too large" in rows[ids[3]]["last_error"]


async def test_429_honours_retry_after(settings: Settings, engine: AsyncEngine) -> None:
    await seed(engine, 2)
    async with running_fake() as fake:
        fake.enqueue(Answer.rate_limited("2"))
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: _len_at_least(fake.requests, 1))
            await run.quiet()
            retried_at = run.clock.now_ms()
            rows = await rows_by_id(engine)
            # A rate limit is no verdict on the rows: handed back untouched, due after it.
            assert all(r["attempts"] == 0 for r in rows.values())
            assert all(r["next_attempt_at"] >= retried_at + 1500 for r in rows.values())
            assert all(r["last_error"] is None for r in rows.values())
            took = await run.until(lambda: settled(engine))
        assert fake.statuses == [429, 200]
        assert took >= 2.0  # nothing was sent before the Retry-After had passed
    assert set((await statuses(engine)).values()) == {"delivered"}


@pytest.mark.parametrize(
    "failure",
    [
        Answer.server_error(500),
        Answer.server_error(503),
        Answer.connection_reset(),
        Answer.slow(30.0),  # far beyond the 1 s request timeout; the fake stores it anyway
        Answer.raw(400, b"<html>bad gateway</html>", content_type="text/html"),
    ],
    ids=["500", "503", "reset", "timeout", "garbage-400"],
)
async def test_transient_failures_are_retried_until_delivered(
    settings: Settings, engine: AsyncEngine, failure: Answer
) -> None:
    ids = await seed(engine, 3)
    async with running_fake() as fake:
        fake.enqueue(failure, failure)
        tuned = relay_settings(settings, fake.origin, request_timeout=1.0)
        async with running_relay(tuned, engine) as run:
            await run.until(lambda: settled(engine))
        assert set(fake.received_ids) == set(ids)  # repeats, if any, under the same ids
        sent = [event["id"] for request in fake.requests for event in request.events]
    rows = await rows_by_id(engine)
    assert {r["status"] for r in rows.values()} == {"delivered"}
    # Each request that carried a row counts as one of its attempts; two of them failed.
    assert {i: r["attempts"] for i, r in rows.items()} == {i: sent.count(i) for i in ids}
    assert len(fake.requests) >= 3


async def test_rows_die_after_max_attempts_with_the_last_error(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 2)
    async with running_fake(default=Answer.server_error(502)) as fake:
        async with running_relay(
            relay_settings(settings, fake.origin, max_attempts=3), engine
        ) as run:
            await run.until(lambda: settled(engine))
        sent = [event["id"] for request in fake.requests for event in request.events]
    rows = await rows_by_id(engine)
    assert {sent.count(i) for i in rows} == {3}
    assert {r["status"] for r in rows.values()} == {"dead"}
    assert {r["attempts"] for r in rows.values()} == {3}
    assert all("HTTP 502" in r["last_error"] for r in rows.values())
    assert all(EVENT_KEY not in r["last_error"] for r in rows.values())


async def test_a_poison_event_in_a_batch_of_100_dies_alone(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed(engine, 100, data=lambda n: {"n": n, "poison": n == 37})
    async with running_fake(poison_marker='"poison": true') as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
        assert len(set(fake.received_ids)) == 99
    rows = await rows_by_id(engine)
    dead = [i for i in ids if rows[i]["status"] == "dead"]
    assert dead == [ids[37]]
    assert "poison event at index 37" in rows[ids[37]]["last_error"]


async def test_batches_are_bounded_by_count_and_bytes(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed(engine, 30, data=lambda n: {"pad": "x" * 900})
    async with running_fake() as fake:
        tuned = relay_settings(settings, fake.origin, batch_size=12, batch_max_bytes=8 * 1024)
        async with running_relay(tuned, engine) as run:
            await run.until(lambda: settled(engine))
        assert all(len(r.events) <= 12 and len(r.body) <= 8 * 1024 for r in fake.requests)
        assert len(fake.received) == 30


async def test_a_lease_keeps_rows_from_other_relays_until_it_expires(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed(engine, 5)
    clock, sent_at = ManualClock(), []
    taken = await deliveries.claim(engine, "crashed-relay", 100, lease_ms=1500, now=clock.now_ms())
    lease_end = clock.now_ms() + 1500
    assert [row.id for row in taken] == ids
    assert await deliveries.claim(engine, "other", 100, lease_ms=1500, now=clock.now_ms()) == []
    async with running_fake(policy=lambda _i, _e: sent_at.append(clock.now_ms())) as fake:
        tuned = relay_settings(settings, fake.origin)
        async with running_relay(tuned, engine, clock=clock) as run:
            await run.until(lambda: settled(engine))
        assert sorted(fake.received_ids) == sorted(ids)
    assert sent_at[0] >= lease_end  # nothing was taken before the crashed relay's lease ran out


async def test_a_storm_of_failures_ends_with_everything_delivered_once_by_id(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed(engine, 400)
    chance = random.Random(7)

    def storm(_index: int, _events: list[dict[str, object]]) -> Answer | None:
        roll = chance.random()
        if roll < 0.30:
            return Answer.server_error(500)
        if roll < 0.40:
            return Answer.rate_limited("0")
        if roll < 0.45:
            return Answer.connection_reset()
        if roll < 0.50:
            return Answer.slow(30.0)  # a stall past the timeout; the fake keeps the events
        return None

    async with running_fake(policy=storm) as fake:
        tuned = relay_settings(
            settings, fake.origin, request_timeout=1.0, batch_size=50, concurrency=4
        )
        async with running_relay(tuned, engine) as run:
            await run.until(lambda: settled(engine))
        assert set(fake.received_ids) == set(ids)
    assert set((await statuses(engine)).values()) == {"delivered"}


async def _len_at_least(items: list[object], count: int) -> bool:
    return len(items) >= count


async def _unlocked(engine: AsyncEngine) -> bool:
    return all(row["locked_by"] is None for row in (await rows_by_id(engine)).values())


async def _park_for_an_hour(engine: AsyncEngine, count: int) -> list[str]:
    """Rows an earlier relay failed to send, waiting out an hour of backoff."""
    waiting = await seed(engine, count)
    claimed = await deliveries.claim(engine, "earlier-relay", 100, lease_ms=60_000, now=now_ms())
    in_an_hour = now_ms() + 3_600_000
    await deliveries.record(
        engine,
        "earlier-relay",
        BatchOutcome(retries=[Retry(r.seq, in_an_hour, "HTTP 503") for r in claimed]),
        now_ms(),
    )
    return waiting


async def test_after_an_outage_the_first_success_brings_the_waiting_retries_forward(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.relay")
    waiting = await _park_for_an_hour(engine, 3)
    fresh = await seed(engine, 1)
    async with running_fake() as fake:
        fake.enqueue(*[Answer.server_error(503)] * OUTAGE_AFTER)  # an outage, as seen here
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
        assert set(fake.received_ids) == {*waiting, *fresh}
    actions = [getattr(r, "action", "") for r in caplog.records]
    assert actions.count("relay.outage") == 1
    assert "relay.recovered" in actions


async def test_retries_inngest_timed_with_retry_after_are_not_brought_forward(
    settings: Settings, engine: AsyncEngine
) -> None:
    waiting = await _park_for_an_hour(engine, 2)
    fresh = await seed(engine, 1)
    async with running_fake() as fake:
        fake.enqueue(*[Answer.rate_limited("0")] * OUTAGE_AFTER)
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: _received_all(fake, fresh))
            await run.quiet()
        assert fake.received_ids == fresh
    states = await statuses(engine)
    assert [states[i] for i in waiting] == ["pending", "pending"]


async def test_expediting_leaves_leased_and_untried_rows_alone(
    settings: Settings, engine: AsyncEngine
) -> None:
    del settings
    await seed(engine, 3)
    now = now_ms()
    first, second, third = await deliveries.claim(engine, "r", 100, lease_ms=60_000, now=now)
    later = now + 600_000
    await deliveries.record(engine, "r", BatchOutcome(retries=[Retry(first.seq, later, "x")]), now)
    await deliveries.record(
        engine, "r", BatchOutcome(released=[second.seq], released_until=later), now
    )
    assert await deliveries.expedite_retries(engine, now_ms()) == 1  # third is still leased
    rows = {r["seq"]: r for r in (await rows_by_id(engine)).values()}
    assert rows[first.seq]["next_attempt_at"] <= now_ms()
    assert rows[second.seq]["next_attempt_at"] == later  # never tried: a key pause, not backoff
    assert rows[third.seq]["locked_by"] == "r"


async def test_an_unexpected_error_does_not_stop_the_relay(
    settings: Settings,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = await seed(engine, 3)
    real_claim, failures = deliveries.claim, []

    async def flaky_claim(*args: object, **kwargs: object) -> list[deliveries.ClaimedRow]:
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug")
        return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(deliveries, "claim", flaky_claim)
    async with running_fake() as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
        assert sorted(fake.received_ids) == sorted(ids)
    assert any(getattr(r, "action", "") == "relay.worker_failed" for r in caplog.records)


async def _received_all(fake: FakeInngest, ids: list[str]) -> bool:
    return set(ids) <= set(fake.received_ids)


async def test_no_request_starts_after_its_lease_could_have_passed_on(
    settings: Settings, engine: AsyncEngine
) -> None:
    # 20 events of ~500 bytes in requests of at most 2 KiB: one claim, several requests, each
    # taking 3 s of the relay's clock. The lease (10 s) less a request's timeout (2 s) leaves
    # 8 s to start requests in: three go, and the rest of the batch is handed back.
    ids = await seed(engine, 20, data=lambda n: {"n": n, "pad": "x" * 400})
    clock, started = ManualClock(), []

    def takes_three_seconds(_index: int, _events: object) -> None:
        started.append(clock.monotonic())
        clock.pass_time(3.0)

    async with running_fake(policy=takes_three_seconds) as fake:
        tuned = relay_settings(
            settings,
            fake.origin,
            request_timeout=2.0,
            batch_size=20,
            batch_max_bytes=2048,
            lease_seconds=10.0,
            concurrency=2,
        )
        async with running_relay(tuned, engine, clock=clock) as run:
            await run.until(lambda: settled(engine))
        # Had a request gone out after the lease ended, the other worker would have taken
        # the same rows and sent them again.
        assert sorted(fake.received_ids) == sorted(ids)
    first_claim = started[0]
    assert [round(at - first_claim) for at in started[:3]] == [0, 3, 6]
    assert len(started) > 3  # the rest went under a claim of their own


async def test_a_claim_of_many_runs_has_its_requests_in_flight_together(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = [event_id for _ in range(12) for event_id in await seed(engine, 3)]  # 12 runs
    async with running_fake(default=Answer.ok(delay=1.0)) as fake:
        tuned = relay_settings(settings, fake.origin, requests_in_flight=4)
        async with running_relay(tuned, engine) as run:
            await run.until(lambda: settled(engine))
        assert len(fake.requests) == 12 and fake.most_at_once == 4
        assert sorted(fake.received_ids) == sorted(ids)
    assert set((await statuses(engine)).values()) == {"delivered"}


async def test_a_key_refused_while_requests_are_in_flight_holds_every_row_back(
    settings: Settings, engine: AsyncEngine
) -> None:
    for _ in range(12):
        await seed(engine, 3)
    async with running_fake(default=Answer(401, delay=0.5)) as fake:
        # The four in flight were answered; none was started after the first refusal.
        await _held_back_after(settings, engine, fake, in_flight=4, requests=4)


async def test_what_a_request_in_flight_hands_back_after_a_refused_key_waits_too(
    settings: Settings, engine: AsyncEngine
) -> None:
    for _ in range(2):
        await seed(engine, 4)  # two runs: two requests at once
    async with running_fake() as fake:
        # One request is refused at once, the other, answered later, is too large: its halves
        # must wait for the key's pause like the rest, not go out during it.
        fake.enqueue(
            Answer.unauthorized(), dataclasses.replace(Answer.payload_too_large(), delay=0.5)
        )
        await _held_back_after(settings, engine, fake, in_flight=2, requests=2)


async def _held_back_after(
    settings: Settings, engine: AsyncEngine, fake: FakeInngest, *, in_flight: int, requests: int
) -> None:
    """The relay, ``in_flight`` requests at once, is paused by a refused key after
    ``requests`` requests, and every row is pending as it was."""
    tuned = relay_settings(settings, fake.origin, requests_in_flight=in_flight, backoff_max=60.0)
    async with running_relay(tuned, engine) as run:
        await run.until(lambda: _len_at_least(fake.requests, requests))
        await run.quiet()
        # One refusal, however many requests in flight were refused: the first pause.
        assert 0 < run.relay.health.paused_for() <= KEY_PAUSE_FIRST
        assert len(fake.requests) == requests
        assert await _unlocked(engine)
    rows = await rows_by_id(engine)
    assert {r["status"] for r in rows.values()} == {"pending"}
    assert {r["attempts"] for r in rows.values()} == {0}
