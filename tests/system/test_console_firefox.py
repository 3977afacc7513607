"""The console in Firefox: Debian's Firefox ESR, headless, driven by puppeteer-core over
WebDriver BiDi (``tests/firefox/console.mjs``) against a running ``service serve`` whose relay
delivers to the test's stand-in Inngest.

The operator signs in, sees the overview (its script loaded under the CSP), finds the dead
events of the last hour, filters them by their error, opens one and replays it; the relay
delivers it. A hostile event's page shows its HTML as text, no page meets a CSP violation or
opens a dialog, and the event list fits 360 px; Firefox is set to the dark scheme, which the
pages follow. Screenshots go to
``test-output/console/firefox/``. The Chromium test covers both backends and accessibility;
this one is about the second browser, on SQLite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import token_digest
from tests.browser import OUTPUT, firefox_path
from tests.conftest import SQLITE_ONLY
from tests.fake_inngest import running_fake
from tests.js_clients import require_js, run_script_async
from tests.processes import free_port, spawn, stop, wait_http
from tests.relay_harness import EVENT_KEY, eventually, statuses
from tests.system.test_console_browser import OPERATOR_TOKEN, seed
from tests.system.test_relay_processes import relay_env

pytestmark = pytest.mark.slow

FIREFOX_PACKAGE = Path(__file__).resolve().parents[1] / "firefox"
# The whole walk, browser start included; only a failure detector.
WALK_TIMEOUT = 300.0


async def _received(received: list[str], event_id: str) -> bool:
    return event_id in received


@SQLITE_ONLY
async def test_an_operator_replays_a_dead_event_in_firefox(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    firefox = firefox_path()
    require_js(FIREFOX_PACKAGE)
    ids = await seed(engine)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shots = OUTPUT / "console" / "firefox"
    async with running_fake(event_key=EVENT_KEY) as fake:
        env = relay_env(
            database_url, fake.origin, CONSOLE_TOKENS=f"alice={token_digest(OPERATOR_TOKEN)}"
        )
        server = spawn(["serve", "--port", str(port)], env, tmp_path / "serve.log")
        try:
            await wait_http(f"{base}/health", server)
            job = {
                "firefox": firefox,
                "base": base,
                "token": OPERATOR_TOKEN,
                "hostile": ids["hostile"],
                "shots": str(shots),
            }
            out = await run_script_async(
                "console.mjs", json.dumps(job), WALK_TIMEOUT, FIREFOX_PACKAGE
            )
            seen = json.loads(out)
            await eventually(lambda: _received(fake.received_ids, ids["plan_dead"]))
        finally:
            assert await stop(server) == 0
    pages = {page["name"]: page for page in seen["pages"]}
    assert pages["sign-in"]["status"] == 401
    assert "Delivery is" in pages["overview"]["notice"]
    assert pages["overview"]["htmx"] == "object"
    assert pages["dead-last-hour"]["rows"] == 2
    assert "data.plan must be a string" in pages["dead-last-hour"]["table"]
    assert pages["filtered"]["rows"] == 1
    assert ids["plan_dead"] in pages["event"]["heading"]
    assert '"data"' in pages["event"]["payload"]
    assert pages["replay-confirm"]["heading"] == "Replay this event?"
    assert pages["replayed"]["heading"] == "Replayed"
    assert "<script>alert(1)</script>" in pages["hostile-event"]["payload"]
    assert pages["events-360"]["width"] <= 360
    assert pages["events-360"]["background"] == "rgb(13, 17, 23)"  # the dark scheme's
    assert seen["violations"] == [] and seen["dialogs"] == [] and seen["errors"] == []
    assert all((shots / f"{name}.png").stat().st_size > 0 for name in pages)
    assert (await statuses(engine))[ids["plan_dead"]] == "delivered"
