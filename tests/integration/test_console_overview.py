"""The overview's figures, shared by every console of a process while they are fresh: read
again once they are older than their time (on a clock the test moves), once for all the
requests that come during a read, and at once after an action."""

from __future__ import annotations

import asyncio
import functools
import math
import re
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.events.ids import now_ms
from service.http.app import create_app
from service.http.console import app as console_app
from service.http.console.overview import FRESH_SECONDS, OverviewFigures
from service.store.statuses import DEAD, PENDING
from tests.integration.test_console import CONSOLE, sign_in
from tests.integration.test_outbox_cli import add, event, every_state
from tests.manual_clock import ManualClock
from tests.sql_statements import recorded_statements

# The count of every row (no WHERE), one per read of the figures, through whichever schema
# the backend's tables are in.
WHOLE_COUNT = re.compile(r"count\(\*\)[^()]*FROM [\w.]*outbox_events\s*$")


async def test_figures_serve_while_fresh_then_are_read_again(engine: AsyncEngine) -> None:
    await every_state(engine)
    clock = ManualClock()
    figures = OverviewFigures(engine, clock=clock.monotonic)
    first = await figures.get()
    assert first.stats.counts[PENDING] == 4
    await add(engine, event(100, now_ms()))
    clock.pass_time(FRESH_SECONDS - 0.5)
    assert await figures.get() is first
    clock.pass_time(0.5)
    again = await figures.get()
    assert again.stats.counts[PENDING] == 5
    assert again.stats.at >= first.stats.at


async def test_requests_during_a_read_share_it(engine: AsyncEngine) -> None:
    await every_state(engine)
    figures = OverviewFigures(engine, clock=ManualClock().monotonic)
    with recorded_statements(engine) as seen:
        answers = await asyncio.gather(*(figures.get() for _ in range(10)))
    assert sum(bool(WHOLE_COUNT.search(sql)) for sql, _params in seen) == 1
    assert all(answer is answers[0] for answer in answers)


async def test_forgotten_figures_are_read_at_the_next_request(engine: AsyncEngine) -> None:
    await every_state(engine)
    figures = OverviewFigures(engine, clock=ManualClock().monotonic)
    first = await figures.get()
    await add(engine, event(100, now_ms()))
    figures.forget()
    assert (await figures.get()).stats.counts[PENDING] == first.stats.counts[PENDING] + 1


async def test_an_action_shows_on_the_overview_at_once(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Figures that never age: only the action's forgetting can bring the new counts.
    never_stale = functools.partial(OverviewFigures, fresh_for=math.inf)
    monkeypatch.setattr(console_app, "OverviewFigures", never_stale)
    rows = await every_state(engine)
    console = await aiohttp_client(create_app(settings.replace(console=CONSOLE)))
    csrf = await sign_in(console)
    before = await (await console.get("/console/overview.json")).json()
    assert before["counts"][DEAD] == 2
    # A change the console did not make waits for the figures to age (never, here).
    await add(engine, event(100, now_ms()))
    unchanged = await (await console.get("/console/overview.json")).json()
    assert unchanged["counts"] == before["counts"]
    answer = await console.post(f"/console/events/{rows.dead[0]}/replay", data={"csrf": csrf})
    assert answer.status == 200
    after = await (await console.get("/console/overview.json")).json()
    assert after["counts"][DEAD] == 1
    assert after["counts"][PENDING] == before["counts"][PENDING] + 2
    assert "As of " in await (await console.get("/console")).text()
