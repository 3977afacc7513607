"""Logs: JSON lines off a terminal, text on one, an ``action`` on every line, an ``event_id`` on
every line about an event, and no secret anywhere (event key, session secret, cookies, tokens).

The handler under test is the real one (``configure_logging``), writing into a buffer.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import NextAuthSettings, Settings
from service.http.app import create_app
from service.http.auth import issue_cookie
from service.logs import configure_logging
from tests.conftest import SECRET, TOKEN, bearer, make_settings
from tests.fake_inngest import Answer, running_fake
from tests.nextauth_cookies import APP_SECRET, OTHER_SECRET, Minter, spec
from tests.processes import free_port, service_env, spawn, sqlite_copy, stop, wait_http
from tests.relay_harness import (
    EVENT_KEY,
    eventually,
    relay_settings,
    rows_by_id,
    running_relay,
    seed,
    settled,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, **settings: Any) -> io.StringIO:
    """Install the service's own handler, writing into ``stream`` instead of stderr."""
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(Settings(**settings))
    return stream


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


@pytest.mark.usefixtures("restore_logging")
def test_auto_is_json_off_a_terminal_and_text_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = capture(monkeypatch, io.StringIO(), log_format="auto")
    log = logging.getLogger("service.relay")
    log.error("event e-1 is dead", extra={"action": "relay.buried", "event_id": "e-1"})
    logging.getLogger("some.library").warning("no action given")
    first, second = records(piped)
    assert first["action"] == "relay.buried" and first["event_id"] == "e-1"
    assert first["level"] == "ERROR" and first["message"] == "event e-1 is dead"
    assert first["logger"] == "service.relay" and first["time"]
    assert second["action"] == "some.library"  # the default: the logger's name

    terminal = capture(monkeypatch, Terminal(), log_format="auto")
    log.info("relay r-1 started", extra={"action": "relay.started"})
    line = terminal.getvalue().strip()
    assert not line.startswith("{")
    assert "INFO" in line and "[relay.started]" in line and line.endswith("relay r-1 started")

    forced = capture(monkeypatch, Terminal(), log_format="json")
    log.info("still json", extra={"action": "x.y"})
    assert records(forced)[0]["action"] == "x.y"


@pytest.fixture
def local_time_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time is New York's (4 or 5 hours off UTC) during the test."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("restore_logging", "local_time_far_from_utc")
def test_json_time_is_rfc3339_utc_with_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Log pipelines parse ``time`` without a pattern: RFC 3339, UTC, ``Z``, milliseconds; the
    keys of a line are the documented ones, in that order."""
    assert time.localtime().tm_gmtoff != 0  # local time must not leak into the line
    out = capture(monkeypatch, io.StringIO(), log_format="json")
    before = datetime.now(UTC)
    logging.getLogger("service.relay").info("sent", extra={"action": "relay.sent"})
    after = datetime.now(UTC)
    [line] = records(out)
    assert list(line) == ["time", "level", "logger", "action", "message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]
    logged = datetime.fromisoformat(line["time"])
    assert logged.tzinfo is not None and logged.utcoffset() == timedelta(0)
    # Milliseconds are truncated, so the line may read up to 1 ms before ``before``.
    assert before - timedelta(milliseconds=1) <= logged <= after
    assert (line["level"], line["logger"]) == ("INFO", "service.relay")


async def test_relay_logs_never_show_the_event_key(
    settings: Settings,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    """401, 5xx, a timeout, a reset and a refused event, each answer quoting the key back."""
    out = capture(monkeypatch, io.StringIO(), log_format="json", log_level="DEBUG")
    ids = await seed(engine, 3)
    echo = EVENT_KEY.encode()
    async with running_fake() as fake:
        fake.enqueue(
            Answer.raw(401, b'{"error":"Event key ' + echo + b' not found","status":401}'),
            Answer.raw(500, b'{"error":"upstream /e/' + echo + b' failed"}'),
            Answer.slow(2.0, stored=False),  # the request times out after 0.5 s
            Answer.connection_reset(),
            Answer.raw(502, b"<html>bad gateway for /e/" + echo + b"</html>", content_type="x"),
            Answer.partial(0, f"event refused (key {EVENT_KEY})"),
        )
        async with running_relay(relay_settings(settings, fake.origin), engine):
            await eventually(lambda: settled(engine), timeout=15)
        # (the slow answer's status is only known to the fake once its delay is over)
        assert [fake.statuses[i] for i in (0, 1, 3, 4, 5)] == [401, 500, None, 502, 400]
        assert all(EVENT_KEY in r.path for r in fake.requests)  # it was sent, as it must be
    text = out.getvalue()
    lines = records(out)
    actions = {line["action"] for line in lines}
    assert {"relay.unauthorized", "relay.transient", "relay.buried"} <= actions
    assert all(line["action"] for line in lines)
    [buried] = [line for line in lines if line["action"] == "relay.buried"]
    assert buried["event_id"] in ids and buried["event_id"] in buried["message"]
    assert EVENT_KEY not in text
    rows = await rows_by_id(engine)
    assert rows[buried["event_id"]]["status"] == "dead"
    assert all(EVENT_KEY not in (row["last_error"] or "") for row in rows.values())


FORGED_TOKEN = "forged-token-9f8e7d6c5b4a39281706"
FORGED_COOKIE = "gAAAAABforgedcookievalue0123456789abcdefghijklmnopqrstuvwxyz=="


async def test_api_never_echoes_credentials(
    aiohttp_client: Any,
    settings: Settings,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    out = capture(monkeypatch, io.StringIO(), log_format="json", log_level="DEBUG")
    client: TestClient = await aiohttp_client(create_app(settings))
    cookie_name = settings.session_cookie_name
    valid_cookie = issue_cookie(settings, {"id": "u-1", "email": "ada@example.com"})
    other_secret = "another-session-secret-0123456789abcdefghij"
    other = make_settings(settings.database_url, session_secret=other_secret)
    foreign_cookie = issue_cookie(other, {"id": "u-2"})
    valid = {"Cookie": f"{cookie_name}={valid_cookie}"}
    forged_bearer = {"Authorization": f"Bearer {FORGED_TOKEN}"}
    attempts = [
        ("POST", "/api", {"Cookie": f"{cookie_name}={FORGED_COOKIE}"}, None, 401),
        ("POST", "/api", {"Cookie": f"{cookie_name}={foreign_cookie}"}, None, 401),
        ("POST", "/api", forged_bearer, None, 401),
        ("POST", "/api", {"Authorization": f"Basic {FORGED_TOKEN}"}, None, 401),
        ("POST", "/api", {**forged_bearer, **valid}, None, 401),
        ("GET", "/api/settings", valid, None, 403),
        ("PUT", "/api/settings", bearer(), b"[1, 2]", 400),
        ("POST", "/api", valid, b"{not json", 400),
        ("POST", "/api", valid, None, 200),
        ("POST", "/api", bearer(), None, 200),
    ]
    answers = []
    for method, path, headers, body, status in attempts:
        response = await client.request(method, path, headers=headers, data=body)
        assert response.status == status, (method, path, await response.text())
        answers.append(f"{dict(response.headers)} {await response.text()}")
    if backend == "sqlite":  # a write the database refuses: the error paths log the most
        holder = sqlite3.connect(
            make_url(settings.database_url).database or "", isolation_level=None
        )
        holder.execute("BEGIN IMMEDIATE")  # held past the 1 s busy timeout
        try:
            response = await client.post("/api", headers=valid)
            assert response.status == 503
            answers.append(f"{dict(response.headers)} {await response.text()}")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert "http.db_unavailable" in out.getvalue()
    secrets = {
        "the session secret": SECRET,
        "the other secret": other_secret,
        "an internal token": TOKEN,
        "a forged token": FORGED_TOKEN,
        "a forged cookie": FORGED_COOKIE,
        "a foreign cookie": foreign_cookie,
        "a valid cookie": valid_cookie,
    }
    logged = out.getvalue()
    for what, secret in secrets.items():
        assert secret not in logged, f"{what} is in the logs"
        for answer in answers:
            assert secret not in answer, f"{what} is in an answer: {answer}"
    assert all(line["action"] for line in records(out))


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


async def test_an_oversized_credential_header_is_not_logged(
    aiohttp_client: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    from service.http.app import HTTP_LIMITS

    out = capture(monkeypatch, io.StringIO(), log_format="json")
    client: TestClient = await aiohttp_client(create_app(settings), server_kwargs=HTTP_LIMITS)
    long_token = "tok-" + "s3cr3t" * 2000
    response = await client.post("/api", headers={"Authorization": f"Bearer {long_token}"})
    assert response.status == 400
    logged = out.getvalue()
    assert "s3cr3ts3cr3t" not in logged
    assert any(line["action"] == "http.malformed_request" for line in records(out))


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


async def test_next_auth_session_cookies_are_never_logged_or_echoed(
    aiohttp_client: Any,
    settings: Settings,
    mint: Minter,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    """Good, bad and oversized next-auth cookies, alone and forwarded with a token: no line of
    the DEBUG log and no answer holds a token, a chunk of one, or the app's secret."""
    from service.http.app import HTTP_LIMITS

    out = capture(monkeypatch, io.StringIO(), log_format="json", log_level="DEBUG")
    app = create_app(settings.replace(nextauth=NextAuthSettings(secrets=(APP_SECRET,))))
    client: TestClient = await aiohttp_client(app, server_kwargs=HTTP_LIMITS)
    claims = {"sub": "u-1", "email": "ada@example.com"}
    made = mint(
        *(spec(kind, claims=claims) for kind in ("v4", "v5", "jws", "zip", "database")),
        spec("v5", OTHER_SECRET, claims=claims),
        spec("v5", claims=claims, maxAge=-60),
        spec("v5", claims={**claims, "pad": "p" * 5000}),  # two chunks
        spec("v5", claims={**claims, "pad": "p" * 9000}),  # three: over the header limit
    )
    expected = [200, 200, 401, 401, 401, 401, 401, 200, 400]
    answers = []
    for minted, status in zip(made, expected, strict=True):
        for headers in (minted.header(), {**bearer(), **minted.header()}):
            response = await client.post("/api", headers=headers)
            assert response.status == status
            answers.append(f"{dict(response.headers)} {await response.text()}")
    logged = out.getvalue()
    for minted in made:
        for value in (minted.token, *(v for _, v in minted.cookies)):
            for middle in (value, value[len(value) // 2 : len(value) // 2 + 40]):
                assert middle not in logged
                assert all(middle not in answer for answer in answers)
    assert APP_SECRET not in logged and OTHER_SECRET not in logged
    assert all(line["action"] for line in records(out))
