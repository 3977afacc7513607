"""Real ``service relay`` and ``service serve`` processes: crash, concurrency, stop, end to end."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import POSTGRESQL_ONLY, bearer
from tests.fake_inngest import Answer, FakeInngest, running_fake
from tests.processes import free_port, kill, service_env, spawn, stop, wait_http
from tests.relay_harness import EVENT_KEY, eventually, rows_by_id, seed, settled, statuses

pytestmark = pytest.mark.slow


def relay_env(database_url: str, origin: str, **extra: str) -> dict[str, str]:
    defaults = {
        "INNGEST_EVENT_API_BASE_URL": origin,
        "INNGEST_EVENT_KEY": EVENT_KEY,
        # Generous: a request or a batch that took longer would be sent again (as it must),
        # and a test counting deliveries would see a machine's slowness as a repeat.
        "INNGEST_REQUEST_TIMEOUT": "10s",
        "RELAY_LEASE": "60s",
        "RELAY_POLL_INTERVAL": "200ms",
        "RELAY_BACKOFF_BASE": "50ms",
        "RELAY_BACKOFF_MAX": "500ms",
        "RELAY_METRICS_PORT": "0",
    }
    return service_env(database_url, **(defaults | extra))


async def test_sigkill_mid_batch_then_another_relay_delivers_once_the_lease_expires(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    ids = await seed(engine, 20)
    async with running_fake() as fake:
        fake.enqueue(Answer.slow(30.0, stored=False))  # the first batch hangs at the fake
        # The request's timeout is long enough that the rows are still leased when they are
        # looked at, also on a busy machine. One worker: two would split the rows between two
        # claims on PostgreSQL, and the second batch, answered at once, would not be leased.
        env = relay_env(
            database_url,
            fake.origin,
            INNGEST_REQUEST_TIMEOUT="5s",
            RELAY_LEASE="6s",
            RELAY_CONCURRENCY="1",
        )
        first = spawn(["relay"], env, tmp_path / "first.log")
        try:
            await eventually(lambda: _has_requests(fake, 1), timeout=20)
            leased = await rows_by_id(engine)
            assert all(r["locked_by"] for r in leased.values())
        finally:
            assert kill(first) == -signal.SIGKILL
        killed_at = time.monotonic()
        second = spawn(["relay"], env, tmp_path / "second.log")
        try:
            await eventually(lambda: settled(engine), timeout=30)
        finally:
            await stop(second)
        # Nothing could be taken before the dead relay's lease ran out.
        assert time.monotonic() - killed_at > 3.5
        assert set(fake.received_ids) == set(ids)
        # The retry of the killed relay's batch went with the same seed: Inngest's ids are the
        # ones the events were written with.
        assert set(fake.internal_ids) == set(ids)
        seeds = {r.headers["x-inngest-event-id-seed"] for r in fake.requests}
        assert len(seeds) == 1, seeds
    assert set((await statuses(engine)).values()) == {"delivered"}


async def test_concurrent_relays_deliver_every_event_exactly_once(
    database_url: str, engine: AsyncEngine, backend: str, tmp_path: Path
) -> None:
    relays = 4 if backend == "postgresql" else 2  # SQLite has one writer: two relays suffice
    ids = await seed(engine, 5000)
    async with running_fake() as fake:
        env = relay_env(database_url, fake.origin, RELAY_BATCH_SIZE="100")
        processes = [spawn(["relay"], env, tmp_path / f"relay{n}.log") for n in range(relays)]
        try:
            await fake.wait_for(5000, timeout=60)
            await eventually(lambda: settled(engine), timeout=30)
            # A relay still starting (slow on a busy machine, the others done before it) has no
            # handler for SIGTERM yet: the stop is only checked on relays that run.
            for n in range(relays):
                await eventually(lambda n=n: _started(tmp_path / f"relay{n}.log"))
        finally:
            for process in processes:
                assert await stop(process) == 0
        counts = Counter(fake.received_ids)
        assert set(counts) == set(ids)
        assert max(counts.values()) == 1
        assert fake.internal_ids == fake.received_ids  # each under the id it was written with
    assert set((await statuses(engine)).values()) == {"delivered"}


async def test_sigterm_finishes_and_records_the_batch_in_flight(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    await seed(engine, 10)
    async with running_fake() as fake:
        fake.enqueue(Answer.slow(2.0))  # answers 200 after 2 s, a tenth of the timeout
        relay = spawn(
            ["relay"],
            relay_env(database_url, fake.origin, INNGEST_REQUEST_TIMEOUT="20s", RELAY_LEASE="60s"),
            tmp_path / "r.log",
        )
        await eventually(lambda: _has_requests(fake, 1), timeout=20)
        assert await stop(relay) == 0
    rows = await rows_by_id(engine)
    assert {r["status"] for r in rows.values()} == {"delivered"}, (tmp_path / "r.log").read_text()


async def test_a_post_wakes_the_relay_of_serve(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    async with running_fake(event_key=EVENT_KEY) as fake:
        # Polling once an hour: only the commit's wake-up can deliver within the test.
        env = relay_env(database_url, fake.origin, RELAY_POLL_INTERVAL="1h")
        server = spawn(["serve", "--port", str(port)], env, tmp_path / "serve.log")
        try:
            await wait_http(f"http://127.0.0.1:{port}/health", server)
            await _posts_reach_inngest(port, fake)
        finally:
            assert await stop(server) == 0
    # A clean run logs no warning (a misconfigured handler warns on every connection).
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines()[1:]]
    assert [line for line in lines if line["level"] not in ("DEBUG", "INFO")] == []


@POSTGRESQL_ONLY
async def test_a_separate_relay_wakes_on_notify_from_the_api(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    port = free_port()
    async with running_fake() as fake:
        # Polling once an hour: only NOTIFY can deliver within the test. A relay that starts to
        # listen after a commit looks for rows once it listens, so the order does not matter.
        env = relay_env(database_url, fake.origin, RELAY_POLL_INTERVAL="1h")
        api = spawn(["serve", "--no-relay", "--port", str(port)], env, tmp_path / "api.log")
        relay = spawn(["relay"], env, tmp_path / "relay.log")
        try:
            await wait_http(f"http://127.0.0.1:{port}/health", api)
            await _posts_reach_inngest(port, fake)
        finally:
            assert await stop(api) == 0
            assert await stop(relay) == 0


async def test_relay_without_a_key_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    env = service_env(database_url)
    process = spawn(["relay"], env, tmp_path / "r.log")
    assert process.wait(timeout=20) == 2
    assert "INNGEST_EVENT_KEY" in (tmp_path / "r.log").read_text()


async def _posts_reach_inngest(port: int, fake: FakeInngest) -> None:
    """Three posts, one after the other, each delivered before the next (the relay is woken
    each time, not by its hourly poll)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.post(f"http://127.0.0.1:{port}/api", headers=bearer()) as response:
                assert response.status == 200
                event_id = (await response.json())["id"]
            await eventually(lambda i=event_id: _received(fake, i))


async def _started(log: Path) -> bool:
    return '"relay.started"' in await asyncio.to_thread(log.read_text)


async def _has_requests(fake: object, count: int) -> bool:
    return len(fake.requests) >= count  # type: ignore[attr-defined]


async def _received(fake: object, event_id: str) -> bool:
    return event_id in fake.received_ids  # type: ignore[attr-defined]


async def test_a_metrics_port_in_use_is_one_line(database_url: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = relay_env(database_url, "http://127.0.0.1:9", RELAY_METRICS_PORT=str(port))
        process = spawn(["relay"], env, tmp_path / "r.log")
        assert process.wait(timeout=20) == 1
    output = (tmp_path / "r.log").read_text()
    assert f"error: RELAY_METRICS_PORT {port}:" in output
    assert "Traceback" not in output
