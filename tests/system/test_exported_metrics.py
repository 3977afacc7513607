"""The dashboard's and the alert rules' metrics are exported by a running ``service serve``
and ``service relay`` (real processes sharing one database)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.conftest import bearer
from tests.fake_inngest import running_fake
from tests.processes import free_port, service_env, spawn, sqlite_copy, stop, wait_http
from tests.promql_names import dashboard_expressions, exported, problems, rule_expressions
from tests.relay_harness import EVENT_KEY, eventually


async def scrape_a_running_service(template: Path, tmp_path: Path) -> list[str]:
    """``/metrics`` of ``service serve --no-relay`` and of ``service relay``, sharing one
    database, once events went through the API, the relay and a stand-in Inngest."""
    api_port, relay_port = free_port(), free_port()
    async with running_fake() as fake:
        env = service_env(
            sqlite_copy(template, tmp_path),
            PORT=str(api_port),
            INNGEST_EVENT_API_BASE_URL=fake.origin,
            INNGEST_EVENT_KEY=EVENT_KEY,
            RELAY_METRICS_PORT=str(relay_port),
            RELAY_POLL_INTERVAL="100ms",
        )
        api = spawn(["serve", "--no-relay"], env, tmp_path / "api.log")
        relay = spawn(["relay"], env, tmp_path / "relay.log")
        api_url, relay_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{relay_port}"
        try:
            await wait_http(f"{api_url}/health", api)
            await wait_http(f"{relay_url}/health", relay)
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    async with session.post(f"{api_url}/api", headers=bearer()) as response:
                        assert response.status == 200
                async with session.get(f"{api_url}/ready") as response:
                    assert response.status == 200

                async def delivered() -> bool:
                    return len(fake.received) >= 3

                await eventually(delivered, timeout=20)
                expositions = []
                for url in (api_url, relay_url):
                    async with session.get(f"{url}/metrics") as response:
                        assert response.status == 200
                        expositions.append(await response.text())
        finally:
            assert await stop(relay) == 0
            assert await stop(api) == 0
    return expositions


@pytest.mark.slow
async def test_dashboard_and_alerts_ask_only_for_exported_metrics(
    sqlite_template: Path, tmp_path: Path
) -> None:
    available = exported(await scrape_a_running_service(sqlite_template, tmp_path))
    # The run exported what the files are about (a broken scrape would vacuously pass).
    assert {"outbox_events_delivered_total", "relay_delivery_attempts_total"} <= set(available)
    assert {"route", "status"} <= available["http_requests_total"]
    expressions = {f"outbox.json: {k}": v for k, v in dashboard_expressions().items()}
    expressions |= {f"alerts.yml: {k}": v for k, v in rule_expressions().items()}
    assert problems(expressions, available) == []
