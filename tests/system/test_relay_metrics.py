"""A real ``service relay`` serves /health and /metrics on its own port."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.events import payload
from service.events.ids import now_ms
from service.store import deliveries
from tests.fake_inngest import Answer, running_fake
from tests.metric_samples import parse, value
from tests.processes import free_port, service_env, spawn, stop, wait_http
from tests.relay_harness import EVENT_KEY, eventually


@pytest.mark.slow
async def test_relay_process_serves_metrics_and_health(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A real ``service relay``: /health and /metrics on RELAY_METRICS_PORT; a refused key
    shows as unauthorized attempts while the rows stay pending (nothing dead-lettered)."""
    async with engine.begin() as conn:
        await deliveries.add(conn, [payload.new_event({"n": n}, None, now_ms()) for n in range(4)])
    port = free_port()
    async with running_fake(default=Answer.unauthorized()) as fake:
        env = service_env(
            database_url,
            INNGEST_EVENT_API_BASE_URL=fake.origin,
            INNGEST_EVENT_KEY=EVENT_KEY,
            RELAY_METRICS_PORT=str(port),
            RELAY_POLL_INTERVAL="100ms",
        )
        relay = spawn(["relay"], env, tmp_path / "relay.log")
        try:
            await wait_http(f"http://127.0.0.1:{port}/health", relay)
            await eventually(lambda: _has_requests(fake), timeout=10)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200
                    samples = parse(await response.text())
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    assert await response.json() == {"status": "ok"}
        finally:
            assert await stop(relay, signal.SIGTERM) == 0
    assert value(samples, "relay_delivery_attempts_total", outcome="unauthorized") >= 1
    assert value(samples, "outbox_pending_rows") == 4
    assert value(samples, "outbox_dead_rows") == 0
    assert value(samples, "outbox_events_delivered_total") == 0
    assert "relay.unauthorized" in (tmp_path / "relay.log").read_text()


async def _has_requests(fake: object) -> bool:
    return len(fake.requests) >= 1  # type: ignore[attr-defined]
