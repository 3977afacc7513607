"""Crash test: a real ``service serve`` under a stream of POSTs is killed with SIGKILL; every
id it answered 200 for is in the outbox afterwards."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from service.store.engine import create_engine
from service.store.tables import outbox_events
from tests.conftest import bearer, make_settings
from tests.processes import free_port, kill, service_env, spawn, wait_http

pytestmark = pytest.mark.slow


async def _post_until_dead(url: str, acknowledged: set[str], stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while not stop.is_set():
            try:
                async with session.post(url, headers=bearer(), json={}) as response:
                    if response.status == 200:
                        acknowledged.add((await response.json())["id"])
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.01)


async def test_sigkill_under_load_loses_no_acknowledged_event(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    process = spawn(
        ["serve", "--no-relay", "--port", str(port)],
        service_env(database_url),
        tmp_path / "serve.log",
    )
    acknowledged: set[str] = set()
    stop = asyncio.Event()
    try:
        await wait_http(f"http://127.0.0.1:{port}/health", process)
        posters = [
            asyncio.create_task(
                _post_until_dead(f"http://127.0.0.1:{port}/api", acknowledged, stop)
            )
            for _ in range(32)
        ]
        # A generous failure detector, not a speed test: 300 acknowledged, however long it takes.
        deadline = time.monotonic() + 120
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert kill(process) != 0  # SIGKILL mid-stream, requests in flight
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*posters)
    finally:
        kill(process)
    assert len(acknowledged) >= 300, (tmp_path / "serve.log").read_text()[-2000:]

    engine = create_engine(make_settings(database_url))
    try:
        async with engine.connect() as conn:
            stored = set((await conn.scalars(select(outbox_events.c.id))).all())
    finally:
        await engine.dispose()
    missing = acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged events lost"
