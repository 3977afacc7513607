"""The logs of real ``service relay`` and ``service serve`` processes: JSON lines off a
terminal, an action on each, where events go, and never the event key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fake_inngest import Answer, running_fake
from tests.processes import free_port, service_env, spawn, sqlite_copy, stop, wait_http
from tests.relay_harness import (
    EVENT_KEY,
    eventually,
    seed,
)


@pytest.mark.slow
async def test_relay_process_logs_json_lines_without_the_key(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A real ``service relay`` with LOG_FORMAT unset and stderr in a file: JSON lines, each
    with an action; Inngest refuses the key (quoting it back) and the key still never shows."""
    await seed(engine, 2)
    refusal = Answer.raw(401, b'{"error":"key ' + EVENT_KEY.encode() + b' unknown"}')
    async with running_fake(default=refusal) as fake:
        env = service_env(
            database_url,
            INNGEST_EVENT_API_BASE_URL=fake.origin,
            INNGEST_EVENT_KEY=EVENT_KEY,
            RELAY_METRICS_PORT="0",
            RELAY_POLL_INTERVAL="100ms",
            LOG_LEVEL="DEBUG",
        )
        del env["LOG_FORMAT"]
        relay = spawn(["relay"], env, tmp_path / "relay.log")
        try:
            await eventually(lambda: _refused(fake), timeout=15)
        finally:
            assert await stop(relay) == 0
    text = (tmp_path / "relay.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert {"relay.started", "relay.unauthorized", "relay.stopped"} <= {
        line["action"] for line in lines
    }
    assert all(line["action"] and line["level"] and line["time"] for line in lines)
    assert EVENT_KEY not in text


async def _refused(fake: object) -> bool:
    return 401 in fake.statuses  # type: ignore[attr-defined]


SERVE_STARTS = {
    "relay": (
        ["serve"],
        {"INNGEST_EVENT_API_BASE_URL": "http://127.0.0.1:9", "INNGEST_EVENT_KEY": EVENT_KEY},
        "http://127.0.0.1:9",
        "the relay delivers to Inngest at http://127.0.0.1:9",
    ),
    "dev-server": (
        ["serve"],
        {"INNGEST_DEV": "1"},
        "http://127.0.0.1:8288",
        "the relay delivers to Inngest's dev server at http://127.0.0.1:8288 (start it with "
        "`npx inngest-cli@latest dev`; its UI shows the events)",
    ),
    "no-relay": (
        ["serve", "--no-relay"],
        {"INNGEST_EVENT_KEY": EVENT_KEY},
        None,
        "no relay in this process (--no-relay): `service relay` delivers the outbox",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SERVE_STARTS))
async def test_serve_says_where_it_delivers_and_never_the_key(
    case: str, sqlite_template: Path, tmp_path: Path
) -> None:
    """The start of a real ``service serve``: where it listens, whether its relay runs and
    where that relay sends (the origin: the key is in the endpoint's path, never logged)."""
    args, extra, origin, delivery = SERVE_STARTS[case]
    port = free_port()
    env = service_env(sqlite_copy(sqlite_template, tmp_path), PORT=str(port), **extra)
    server = spawn(args, env, tmp_path / "serve.log")
    try:
        await wait_http(f"http://127.0.0.1:{port}/health", server)
    finally:
        assert await stop(server) == 0
    text = (tmp_path / "serve.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    [started] = [line for line in lines if line["action"] == "serve.started"]
    assert started["message"] == f"serving on http://127.0.0.1:{port}; {delivery}"
    assert started["relay"] is (origin is not None)
    assert started.get("inngest_origin") == origin
    assert EVENT_KEY not in text
