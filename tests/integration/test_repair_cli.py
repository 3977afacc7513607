"""The console's repairs from the command line, on each backend: ``service outbox mark-dead``,
``pause`` and ``resume`` (the same functions the console calls), and ``service console token``,
whose entry signs in."""

from __future__ import annotations

import asyncio
import re

from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncEngine

from service.cli.main import main
from service.config import Settings
from service.http.console.sessions import operator_for_token
from service.store import delivery_state
from tests.integration.test_outbox_cli import cli, every_state
from tests.relay_harness import statuses


async def test_mark_dead_buries_pending_rows_only(database_url: str, engine: AsyncEngine) -> None:
    rows = await every_state(engine)
    result = await cli(database_url, "mark-dead", rows.due, rows.delivered[0], "--reason", "bad")
    assert result.exit_code == 1  # one of them was not pending
    assert f"{rows.due}: dead" in result.stdout
    assert f"{rows.delivered[0]}: not pending" in result.stderr
    now = await statuses(engine)
    assert now[rows.due] == "dead" and now[rows.delivered[0]] == "delivered"


async def test_pause_and_resume(database_url: str, engine: AsyncEngine) -> None:
    paused = await cli(database_url, "pause")
    assert paused.exit_code == 0 and "delivery paused" in paused.stdout
    state = await delivery_state.read_state(engine)
    assert state.paused_at is not None and "(command line)" in (state.paused_by or "")
    again = await cli(database_url, "pause")
    assert "paused already" in again.stdout
    resumed = await cli(database_url, "resume")
    assert resumed.exit_code == 0 and "delivery resumed" in resumed.stdout
    assert (await delivery_state.read_state(engine)).paused_at is None
    assert "was not paused" in (await cli(database_url, "resume")).stdout


async def test_console_token_prints_an_entry_that_signs_in() -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["console", "token", "--name", "alice"]
    )
    assert result.exit_code == 0, result.output
    token = re.search(r"not shown again\): (\S+)", result.stdout)
    entry = re.search(r"CONSOLE_TOKENS entry: (\S+)", result.stdout)
    assert token is not None and entry is not None
    settings = Settings.from_env({"CONSOLE_TOKENS": entry.group(1)})
    assert operator_for_token(token.group(1), settings.console, ()) == "alice"
    bad = CliRunner().invoke(main, ["console", "token", "--name", "has space"])
    assert bad.exit_code == 2
