"""The console in a real browser: headless Chromium against a running ``service serve`` whose
relay delivers to the test's stand-in Inngest, on each backend.

An operator signs in, sees the overview, finds the dead events of the last hour and why they
died, opens one, replays it and sees it delivered, then purges the other. Every page is
checked by axe-core (no serious or critical violation), must raise no CSP violation, run no
script of an event's data, and fit a 360 px screen; a screenshot of each lands in
``test-output/console/<backend>/`` (and, with ``UPDATE_SCREENSHOTS=1``, the README's in
``docs/console/``).
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import token_digest
from tests.browser import OUTPUT, WAIT_MS, chromium, serious_violations
from tests.fake_inngest import running_fake
from tests.integration.test_outbox_cli import add, event, every_state, settle
from tests.processes import ROOT, free_port, spawn, stop, wait_http
from tests.relay_harness import EVENT_KEY, eventually, statuses
from tests.system.test_relay_processes import relay_env

pytestmark = pytest.mark.slow

OPERATOR_TOKEN = "operator-token-for-the-browser-tests-4567"
HOSTILE = '<img src=x onerror="alert(document.cookie)"><script>alert(1)</script>'
README_SHOTS = ROOT / "docs" / "console"


class Pages:
    """The test's browser page, with the checks every console page must pass."""

    def __init__(self, page: Page, base: str, shots: Path) -> None:
        page.set_default_timeout(WAIT_MS)
        self.page = page
        self.base = base
        self.shots = shots
        self.dialogs: list[str] = []
        self.csp_errors: list[str] = []
        page.on("dialog", lambda dialog: self._dialog(dialog.message))
        page.on("console", self._console)

    def _dialog(self, message: str) -> None:
        self.dialogs.append(message)

    def _console(self, message: object) -> None:
        text = getattr(message, "text", "")
        if "Content Security Policy" in text:
            self.csp_errors.append(text)

    async def check(self, name: str) -> None:
        """Accessible, script-free of the events' data, within CSP; photographed."""
        assert await serious_violations(self.page) == [], name
        assert self.dialogs == [], name
        assert self.csp_errors == [], name
        self.shots.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=self.shots / f"{name}.png", full_page=True)


async def seed(engine: AsyncEngine) -> dict[str, str]:
    """Every state, and a dead event whose name, data and error are HTML."""
    rows = await every_state(engine)
    [hostile] = await add(engine, event(50, 0, name=f"app/{HOSTILE}", note=HOSTILE))
    await settle(engine, 0, dead={hostile: f"HTTP 400: {HOSTILE}"})
    return {"plan_dead": rows.dead[0], "boom_dead": rows.dead[1], "hostile": hostile}


async def test_an_operator_finds_replays_and_purges_dead_events(
    engine: AsyncEngine, database_url: str, backend: str, tmp_path: Path
) -> None:
    ids = await seed(engine)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running_fake(event_key=EVENT_KEY) as fake, chromium() as browser:
        env = relay_env(
            database_url,
            fake.origin,
            CONSOLE_TOKENS=f"alice={token_digest(OPERATOR_TOKEN)}",
        )
        server = spawn(["serve", "--port", str(port)], env, tmp_path / "serve.log")
        try:
            await wait_http(f"{base}/health", server)
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            pages = Pages(await context.new_page(), base, OUTPUT / "console" / backend)
            await operate(pages, ids)
            await eventually(lambda: _received(fake.received_ids, ids["plan_dead"]))
            await see_it_delivered(pages, ids["plan_dead"])
            await purge(pages)
            await narrow_and_dark(browser, base, pages)
            await context.close()
        finally:
            assert await stop(server) == 0
    left = await statuses(engine)
    assert ids["boom_dead"] not in left and ids["hostile"] not in left
    if os.environ.get("UPDATE_SCREENSHOTS") and backend == "sqlite":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        for name in ("sign-in", "overview", "dead-last-hour", "event", "events-dark"):
            shutil.copyfile(pages.shots / f"{name}.png", README_SHOTS / f"{name}.png")


async def _received(received: list[str], event_id: str) -> bool:
    return event_id in received


async def operate(pages: Pages, ids: dict[str, str]) -> None:
    page = pages.page
    answer = await page.goto(f"{pages.base}/console")
    assert answer is not None and answer.status == 401
    await pages.check("sign-in")
    await page.fill("#token", OPERATOR_TOKEN)
    await page.press("#token", "Enter")
    await page.wait_for_url(f"{pages.base}/console")
    await expect(page.locator(".notice").first).to_contain_text("Delivery is")
    assert await page.evaluate("typeof window.htmx") == "object"
    # The keyboard first reaches the link past the header, which leads to the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Enter")
    # The page learns of the fragment's navigation a moment after the key: wait for it.
    await expect(page).to_have_url(re.compile(r"#main$"))
    await pages.check("overview")
    # The dead events of the last hour, and why they died.
    await page.click("text=Dead in the last hour")
    await expect(page.locator("table.events tbody tr")).to_have_count(2)
    await expect(page.locator("table.events")).to_contain_text("data.plan must be a string")
    await pages.check("dead-last-hour")
    await page.fill("#error", "DATA.PLAN")
    await page.click("button:text('Filter')")
    await expect(page.locator("table.events tbody tr")).to_have_count(1)
    await page.click("table.events tbody tr a")
    await expect(page.locator("h1")).to_contain_text(ids["plan_dead"])
    await expect(page.locator("pre.payload")).to_contain_text('"data"')
    await pages.check("event")
    await page.click("a:text('Replay')")
    await pages.check("replay-confirm")
    await page.click("button:text('Replay')")
    await expect(page.locator("h1")).to_have_text("Replayed")
    # Hostile data, shown as text.
    await page.goto(f"{pages.base}/console/events/{ids['hostile']}")
    await expect(page.locator("pre.payload")).to_contain_text("<script>alert(1)</script>")
    await pages.check("hostile-event")


async def see_it_delivered(pages: Pages, event_id: str) -> None:
    page = pages.page
    await page.goto(f"{pages.base}/console/events/{event_id}")
    await expect(page.locator(".state").first).to_have_text("delivered")


async def purge(pages: Pages) -> None:
    page = pages.page
    await page.goto(f"{pages.base}/console/purge")
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await page.fill("#before", later)
    await page.click("button:text('Count them')")
    # The other dead event of every_state, and the hostile one.
    await expect(page.locator(".notice")).to_contain_text("Delete 2 dead events")
    await pages.check("purge-confirm")
    await page.click("button:text('Delete 2')")
    await expect(page.locator(".notice")).to_contain_text("2 dead events deleted")


async def narrow_and_dark(browser: object, base: str, pages: Pages) -> None:
    """At 360 px nothing is wider than the screen; the dark scheme follows the system's."""
    context = await browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 360, "height": 800}, color_scheme="dark"
    )
    page = await context.new_page()
    narrow = Pages(page, base, pages.shots)
    await page.goto(f"{base}/console/sign-in")
    await page.fill("#token", OPERATOR_TOKEN)
    await page.press("#token", "Enter")
    await page.wait_for_url(f"{base}/console")
    for path, name in (("/console", "overview-360"), ("/console/events", "events-dark")):
        await page.goto(base + path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, (path, width)
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        await narrow.check(name)
    await context.close()
