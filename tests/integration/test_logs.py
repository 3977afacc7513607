"""Logs: JSON lines off a terminal, text on one, an ``action`` on every line, an ``event_id`` on
every line about an event, and no secret anywhere (event key, session secret, cookies, tokens).

The handler under test is the real one (``configure_logging``), writing into a buffer.
"""

from __future__ import annotations

import io
import sqlite3
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import NextAuthSettings, Settings
from service.http.app import create_app
from service.http.auth import issue_cookie
from tests.conftest import SECRET, TOKEN, bearer, make_settings
from tests.fake_inngest import Answer, running_fake
from tests.live_server import ServiceTestServer
from tests.log_capture import capture, records
from tests.nextauth_cookies import APP_SECRET, OTHER_SECRET, Minter, spec
from tests.relay_harness import (
    EVENT_KEY,
    relay_settings,
    rows_by_id,
    running_relay,
    seed,
    settled,
)


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
            Answer.slow(30.0, stored=False),  # the request times out after 1 s
            Answer.connection_reset(),
            Answer.raw(502, b"<html>bad gateway for /e/" + echo + b"</html>", content_type="x"),
            Answer.partial(0, f"event refused (key {EVENT_KEY})"),
        )
        tuned = relay_settings(settings, fake.origin, request_timeout=1.0)
        async with running_relay(tuned, engine) as run:
            await run.until(lambda: settled(engine))
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


async def test_an_oversized_credential_header_is_not_logged(
    aiohttp_client: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:

    out = capture(monkeypatch, io.StringIO(), log_format="json")
    client: TestClient = await aiohttp_client(ServiceTestServer(create_app(settings), settings))
    long_token = "tok-" + "s3cr3t" * 3000
    response = await client.post("/api", headers={"Authorization": f"Bearer {long_token}"})
    assert response.status == 431
    logged = out.getvalue()
    assert "s3cr3ts3cr3t" not in logged
    assert any(line["action"] == "http.malformed_request" for line in records(out))


async def test_next_auth_session_cookies_are_never_logged_or_echoed(
    aiohttp_client: Any,
    settings: Settings,
    mint: Minter,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    """Good, bad and oversized next-auth cookies, alone and forwarded with a token: no line of
    the DEBUG log and no answer holds a token, a chunk of one, or the app's secret."""

    out = capture(monkeypatch, io.StringIO(), log_format="json", log_level="DEBUG")
    app = create_app(settings.replace(nextauth=NextAuthSettings(secrets=(APP_SECRET,))))
    client: TestClient = await aiohttp_client(ServiceTestServer(app, settings))
    claims = {"sub": "u-1", "email": "ada@example.com"}
    made = mint(
        *(spec(kind, claims=claims) for kind in ("v4", "v5", "jws", "zip", "database")),
        spec("v5", OTHER_SECRET, claims=claims),
        spec("v5", claims=claims, maxAge=-60),
        spec("v5", claims={**claims, "pad": "p" * 5000}),  # two chunks
        spec("v5", claims={**claims, "pad": "p" * 6000}),  # three chunks: within the limit
        spec("v5", claims={**claims, "pad": "p" * 16000}),  # over the header limit
    )
    expected = [200, 200, 401, 401, 401, 401, 401, 200, 200, 431]
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
