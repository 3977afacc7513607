"""The browsers of the console's tests: Debian's Chromium, headless, driven by Playwright (its
own browser downloads are never used), with axe-core run inside the page; and Debian's Firefox
ESR, driven by puppeteer-core over WebDriver BiDi (``tests/firefox``).

Without a browser, or without the npm package that goes with it, the tests skip with the
reason; in CI (``CI`` set) that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.js_clients import in_ci, require_js
from tests.processes import ROOT

AXE = Path(__file__).resolve().parent / "axe"
# Where each test's screenshots go (CI keeps the folder as an artefact).
OUTPUT = ROOT / "test-output"
# What a machine without a network needs: no background connections, no component updates.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERIOUS = ("serious", "critical")
# Playwright's waits only detect a failure: generous, so that a busy machine is not one
# (its defaults are 5 s for an assertion and 30 s for an action).
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)


def browser_path(variable: str, program: str, package: str) -> str:
    """The browser to drive (``variable`` or Debian's ``program``); skips or fails when there
    is none."""
    path = os.environ.get(variable) or shutil.which(program) or f"/usr/bin/{program}"
    if Path(path).exists():
        return path
    reason = f"{program} is not installed (Debian's {package} package): `make test` installs it"
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this is a failure, not a skip)")
    pytest.skip(reason)


def chromium_path() -> str:
    return browser_path("CHROMIUM", "chromium", "chromium")


def firefox_path() -> str:
    return browser_path("FIREFOX", "firefox-esr", "firefox-esr")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_path()
    require_js(AXE)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now. The engine is
    evaluated through the browser's debugging protocol, which the page's CSP does not govern,
    so the page is checked as it is served."""
    source = (AXE / "node_modules" / "axe-core" / "axe.min.js").read_text()
    await page.evaluate(source + "\n;undefined")
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"""
    )
    return [v for v in found if v["impact"] in SERIOUS]
