"""``service relay`` serves the console on its metrics port only when ``CONSOLE_ON_RELAY`` says
so: a real relay process, signed in with a token, its pages read over HTTP."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from service.config import token_digest
from tests.fake_inngest import running_fake
from tests.processes import free_port, spawn, stop, wait_http
from tests.relay_harness import EVENT_KEY
from tests.system.test_relay_processes import relay_env

pytestmark = pytest.mark.slow

TOKEN = "relay-console-operator-token-0123456789"


@pytest.mark.parametrize("backend", ["sqlite"])  # the port's wiring; the pages are the same
@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
async def test_the_relays_metrics_port_serves_the_console_when_asked(
    database_url: str, tmp_path: Path, on: bool
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running_fake(event_key=EVENT_KEY) as fake:
        env = relay_env(
            database_url,
            fake.origin,
            RELAY_METRICS_PORT=str(port),
            CONSOLE_TOKENS=f"ops={token_digest(TOKEN)}",
            **({"CONSOLE_ON_RELAY": "1"} if on else {}),
        )
        relay = spawn(["relay"], env, tmp_path / "relay.log")
        try:
            await wait_http(f"{base}/health", relay)
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as session:
                async with session.get(f"{base}/console") as answer:
                    assert answer.status == (401 if on else 404)
                if on:
                    form = {"token": TOKEN}
                    async with session.post(f"{base}/console/sign-in", data=form) as answer:
                        assert answer.status == 200  # after the redirect to the overview
                        assert "ops" in await answer.text()
                    async with session.get(f"{base}/console/overview.json") as answer:
                        assert answer.status == 200
                        assert "counts" in await answer.json()
        finally:
            assert await stop(relay) == 0
