"""The operators' console over HTTP, on each backend: who gets in (token, next-auth session),
what every route answers without a session or with a forged, expired or foreign one, CSRF and
cross-origin refusals, the headers, hostile data rendered inert, and each repair doing what
the command line does, with its audit line.

Rows are put into their states by the outbox's own functions (``every_state``), as a relay
would; the pages are read as HTML text by an aiohttp client (the browser tests drive Chromium).
"""

from __future__ import annotations

import dataclasses
import html
import io
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ConsoleSettings, NextAuthSettings, Settings, token_digest
from service.events.ids import now_ms
from service.http.app import create_app
from service.http.auth import issue_cookie
from service.http.console.guard import SECURITY_HEADERS
from service.http.console.sessions import COOKIE_NAME, ConsoleSession, SessionCookies
from service.http.keys import ENGINE
from service.store import delivery_state
from service.store.statuses import DEAD, DELIVERED, PENDING
from service.store.tables import outbox_events
from tests.integration.test_outbox_cli import add, event, every_state, settle
from tests.log_capture import capture, records
from tests.nextauth_cookies import APP_SECRET, PROFILE, Minter
from tests.sql_statements import recorded_statements

OPERATOR_TOKEN = "operator-token-for-the-console-tests-0123"
CONSOLE = ConsoleSettings(token_digests=(f"alice={token_digest(OPERATOR_TOKEN)}",))
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def console_settings(settings: Settings) -> Settings:
    return settings.replace(console=CONSOLE)


@pytest.fixture
async def make_client(aiohttp_client: Any, console_settings: Settings) -> MakeClient:
    async def make(settings: Settings | None = None) -> TestClient:
        return await aiohttp_client(create_app(settings or console_settings))  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def console(make_client: MakeClient) -> TestClient:
    return await make_client()


async def sign_in(client: TestClient, token: str = OPERATOR_TOKEN) -> str:
    """Sign in with ``token``; the CSRF token of the session."""
    answer = await client.post("/console/sign-in", data={"token": token}, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    assert answer.headers["Location"] == "/console"
    return await csrf_of(client)


async def csrf_of(client: TestClient) -> str:
    page = await client.get("/console")
    assert page.status == 200
    match = CSRF.search(await page.text())
    assert match is not None
    return match.group(1)


def console_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every console route but the public ones, with its path filled in."""
    public = {"console.static", "console.sign_in_form", "console.sign_in"}
    found = []
    for route in app.router.routes():
        name = route.name or ""
        if not name.startswith("console.") or name in public or route.method == "HEAD":
            continue
        path = route.resource.canonical.replace("{event_id}", "some-id")  # type: ignore[union-attr]
        found.append((route.method, path))
    return found


# -- who gets in ----------------------------------------------------------------------------


async def test_every_route_needs_a_session(console: TestClient) -> None:
    routes = console_routes(console.app)
    assert len(routes) == 19  # every page, fragment, JSON answer and action
    for method, path in routes:
        answer = await console.request(method, path, allow_redirects=False)
        assert answer.status == 401, (method, path, answer.status)
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers[header] == value, (path, header)
    json_answer = await console.get("/console/overview.json")
    assert json_answer.status == 401
    assert json_answer.content_type == "application/json"
    # The overview's refresh, after the session ran out, sends the browser to sign in.
    live = await console.get("/console/overview/live", headers={"HX-Request": "true"})
    assert live.status == 401 and live.headers["HX-Redirect"] == "/console/sign-in"
    # Unknown paths under /console say nothing of what exists.
    assert (await console.get("/console/no-such-page")).status == 401


async def test_a_token_signs_in_and_the_cookie_is_strict(console: TestClient) -> None:
    answer = await console.post(
        "/console/sign-in", data={"token": OPERATOR_TOKEN}, allow_redirects=False
    )
    assert answer.status == 303
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=1800"):
        assert attribute in cookie
    assert "Secure" not in cookie  # development; production's settings make it Secure
    page = await console.get("/console")
    assert page.status == 200
    assert "alice" in await page.text()
    assert (await console.get("/console/overview.json")).status == 200


async def test_production_cookies_are_secure(
    make_client: MakeClient, console_settings: Settings
) -> None:
    client = await make_client(console_settings.replace(session_cookie_secure=True))
    answer = await client.post(
        "/console/sign-in", data={"token": OPERATOR_TOKEN}, allow_redirects=False
    )
    assert "Secure" in answer.headers["Set-Cookie"]


async def test_wrong_tokens_are_refused_and_sign_in_is_rate_limited(
    make_client: MakeClient, console_settings: Settings
) -> None:
    client = await make_client(
        console_settings.replace(
            console=ConsoleSettings(token_digests=CONSOLE.token_digests, sign_in_attempts=3)
        )
    )
    for token in ("wrong", token_digest(OPERATOR_TOKEN), "x" * 10_000):
        answer = await client.post("/console/sign-in", data={"token": token})
        assert answer.status == 401
        assert COOKIE_NAME not in answer.cookies
    # The fourth attempt of the minute is refused before the token is even looked at.
    limited = await client.post("/console/sign-in", data={"token": OPERATOR_TOKEN})
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await client.get("/console")).status == 401


async def test_forged_altered_foreign_and_expired_cookies_are_refused(
    console: TestClient, console_settings: Settings
) -> None:
    cookies = SessionCookies(console_settings)
    good = cookies.make(ConsoleSession.start("alice", "token"))
    other_secret = console_settings.replace(
        session_secret="another-secret-0123456789abcdefghijklmn"
    )
    expired = SessionCookies(console_settings, clock=lambda: now_ms() / 1000 - 1801)
    candidates = {
        "forged": "gAAAAABforged-cookie-value",
        "altered": good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"),
        "other secret": SessionCookies(other_secret).make(ConsoleSession.start("eve", "token")),
        # The app's own session cookie (same secret, another purpose) opens nothing here.
        "app session": issue_cookie(console_settings, {"id": "u1", "email": "a@example.com"}),
        "expired": expired.make(ConsoleSession.start("alice", "token")),
    }
    for label, value in candidates.items():
        answer = await console.get("/console", headers={"Cookie": f"{COOKIE_NAME}={value}"})
        assert answer.status == 401, label
    answer = await console.get("/console", headers={"Cookie": f"{COOKIE_NAME}={good}"})
    assert answer.status == 200


async def test_signing_out_ends_the_session(console: TestClient) -> None:
    csrf = await sign_in(console)
    answer = await console.post("/console/sign-out", data={"csrf": csrf}, allow_redirects=False)
    assert answer.status == 303
    assert (await console.get("/console")).status == 401


# -- CSRF and other origins -----------------------------------------------------------------


async def test_posts_need_the_sessions_csrf_token_and_the_consoles_origin(
    console: TestClient, engine: AsyncEngine
) -> None:
    csrf = await sign_in(console)
    refused = [
        ({}, {}),
        ({"csrf": "not-the-token"}, {}),
        ({"csrf": csrf}, {"Origin": "https://evil.example"}),
        ({"csrf": csrf}, {"Origin": "null"}),
        ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": csrf}, {"Sec-Fetch-Site": "same-site"}),
    ]
    for form, headers in refused:
        answer = await console.post("/console/pause", data=form, headers=headers)
        assert answer.status == 403, (form, headers)
        assert (await delivery_state.read_state(engine)).paused_at is None
    origin = f"http://{console.host}:{console.port}"
    answer = await console.post(
        "/console/pause",
        data={"csrf": csrf},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status == 200
    assert (await delivery_state.read_state(engine)).paused_by == "alice"


async def test_a_cross_origin_sign_in_is_refused(console: TestClient) -> None:
    answer = await console.post(
        "/console/sign-in",
        data={"token": OPERATOR_TOKEN},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status == 403
    assert COOKIE_NAME not in answer.cookies


# -- what the pages show --------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_hostile_names_data_and_errors_are_rendered_inert(
    console: TestClient, engine: AsyncEngine
) -> None:
    now = now_ms()
    [hostile] = await add(engine, event(1, now, name=f"app/{HOSTILE}", note=HOSTILE))
    await settle(engine, now, dead={hostile: f"HTTP 400: {HOSTILE}"})
    await sign_in(console)
    pages = [
        "/console",
        "/console/events",
        "/console/events?state=dead",
        f"/console/events?error={HOSTILE}",
        f"/console/events/{hostile}",
    ]
    for path in pages:
        answer = await console.get(path)
        assert answer.status == 200, path
        text = await answer.text()
        assert "<script>alert" not in text, path
        assert "<img src=x" not in text, path
    event_page = await (await console.get(f"/console/events/{hostile}")).text()
    assert html.escape(HOSTILE, quote=True)[:30] in event_page or "&lt;script&gt;" in event_page


async def test_a_huge_payload_is_cut_short_in_the_list_and_whole_in_its_page(
    console: TestClient, engine: AsyncEngine
) -> None:
    big = "y" * 200_000
    [huge] = await add(engine, event(1, now_ms(), blob=big))
    await sign_in(console)
    listing = await (await console.get("/console/events")).text()
    assert "y" * 20 in listing
    assert "y" * 1_000 not in listing
    assert len(listing) < 50_000
    page = await (await console.get(f"/console/events/{huge}")).text()
    assert big in page


async def test_the_overview_counts_every_state(console: TestClient, engine: AsyncEngine) -> None:
    await every_state(engine)
    await sign_in(console)
    document = await (await console.get("/console/overview.json")).json()
    assert document["counts"] == {
        "pending": 4,
        "in_flight": 2,
        "retrying": 1,
        "delivered": 2,
        "dead": 2,
    }
    assert [lease["rows"] for lease in document["leases"]] == [2]
    assert len(document["minutes"]) in (61, 62)
    assert sum(minute["delivered"] for minute in document["minutes"]) == 2
    assert sum(minute["accepted"] for minute in document["minutes"]) == 8
    page = await (await console.get("/console")).text()
    # The oldest pending event has waited six minutes: slow, said at a glance.
    assert "Delivery is <strong>slow</strong>" in page
    assert "<svg" in page
    fragment = await console.get("/console/overview/live", headers={"HX-Request": "true"})
    assert fragment.status == 200
    assert "<html" not in await fragment.text()


async def test_filters_and_cursor_pages(console: TestClient, engine: AsyncEngine) -> None:
    now = now_ms()
    ids = await add(engine, *(event(n, now - n * 1000, name=f"app/n{n % 3}") for n in range(120)))
    await sign_in(console)

    async def listed(query: str) -> tuple[list[str], str | None]:
        text = await (await console.get(f"/console/events?{query}")).text()
        found = re.findall(r'href="/console/events/([^"?]+)"', text)
        more = re.search(r'href="/console/events\?([^"]+)" rel="next"', text)
        return found, None if more is None else html.unescape(more.group(1))

    first, more = await listed("")
    assert first == ids[:50]  # newest first
    assert more is not None
    second, more = await listed(more)
    assert second == ids[50:100]
    assert more is not None
    third, more = await listed(more)
    assert third == ids[100:]
    assert more is None
    by_name, _ = await listed("name=app/n1")
    assert by_name == ids[1::3][:50]
    window, _ = await listed("since=10s")
    assert window == [i for n, i in enumerate(ids) if n * 1000 <= 10_000 and n * 1000 < 10_000]
    one, _ = await listed(f"id={ids[7]}")
    assert one == [ids[7]]
    bad = await console.get("/console/events?since=tomorrowish&after=zzz")
    assert bad.status == 400
    assert "neither a duration" in await bad.text()


async def test_an_inngest_id_finds_its_event(
    console: TestClient, engine: AsyncEngine, backend: str
) -> None:
    """By the event's own id, or by Inngest's where the two differ (an app's own id kept); the
    index of Inngest ids holds only those, and the lookup reads it."""
    from service.events import payload
    from service.events.inngest_ids import ulid

    own = payload.new_event({"n": 1}, {"id": "u1"}, now_ms())
    assert own.inngest_id == own.id  # the service's own ids are Inngest's
    kept = dataclasses.replace(
        payload.new_event({"n": 2}, {"id": "u1"}, now_ms(), event_id="order-7"),
        inngest_id=ulid(now_ms(), os.urandom(10)),
    )
    assert kept.inngest_id is not None
    await add(engine, own, kept)
    await sign_in(console)
    # The console's own process has an engine of its own.
    with recorded_statements(console.app[ENGINE]) as seen:
        lookups = ((own.id, own.id), (kept.id, kept.id), (kept.inngest_id, kept.id))
        for looked_up, expected in lookups:
            text = await (await console.get(f"/console/events?id={looked_up}")).text()
            assert re.findall(r'href="/console/events/([^"?]+)"', text) == [expected], looked_up
    if backend != "sqlite":
        return  # PostgreSQL's plans on a table this small are its statistics' choice
    sql, params = next((sql, p) for sql, p in seen if "outbox_events.inngest_id =" in sql)
    async with engine.connect() as conn:
        plan = " | ".join(
            str(row[3]) for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        )
    assert "MULTI-INDEX OR" in plan and "ix_outbox_events_inngest_id" in plan, plan


async def test_an_id_with_a_slash_has_its_page(console: TestClient, engine: AsyncEngine) -> None:
    from service.events import payload

    odd = payload.new_event({"n": 1}, {"id": "u1"}, now_ms(), event_id="tenant/42?x=#1")
    await add(engine, odd)
    await sign_in(console)
    listing = await (await console.get("/console/events")).text()
    assert 'href="/console/events/tenant%2F42%3Fx%3D%231"' in listing
    page = await console.get("/console/events/tenant%2F42%3Fx%3D%231")
    assert page.status == 200
    assert "tenant/42?x=#1" in await page.text()


async def test_the_event_page_shows_ids_attempts_and_times(
    console: TestClient, engine: AsyncEngine
) -> None:
    rows = await every_state(engine)
    await sign_in(console)
    text = await (await console.get(f"/console/events/{rows.retrying}")).text()
    for expected in ("Inngest id", "Attempts", "First failed attempt", "Next attempt", "HTTP 503"):
        assert expected in text
    # Its one failed attempt, in the history (no status code: none came in this test's outcome).
    assert re.search(
        r"<td>1</td><td>[^<]+</td><td>no answer</td><td class=\"error\">HTTP 503", text
    )
    missing = await console.get("/console/events/no-such-event")
    assert missing.status == 404


async def test_the_settings_page_shows_the_document(console: TestClient) -> None:
    from tests.conftest import bearer

    put = await console.put("/api/settings", json={"plan": "<b>pro</b>"}, headers=bearer())
    assert put.status == 200
    await sign_in(console)
    text = await (await console.get("/console/settings")).text()
    assert "&lt;b&gt;pro&lt;/b&gt;" in text
    assert "last changed" in text


# -- repairs --------------------------------------------------------------------------------


async def statuses_of(engine: AsyncEngine) -> dict[str, str]:
    t = outbox_events
    async with engine.connect() as conn:
        return {row.id: row.status for row in await conn.execute(select(t.c.id, t.c.status))}


async def test_replaying_one_event_and_a_filtered_set(
    console: TestClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = capture(monkeypatch, io.StringIO(), log_format="json")
    rows = await every_state(engine)
    csrf = await sign_in(console)
    confirm = await (await console.get(f"/console/events/{rows.dead[0]}/replay")).text()
    assert "Replay dead event" in confirm
    answer = await console.post(f"/console/events/{rows.dead[0]}/replay", data={"csrf": csrf})
    assert answer.status == 200
    assert (await statuses_of(engine))[rows.dead[0]] == PENDING
    # A delivered event is sent again as a new one, which names it.
    await console.post(f"/console/events/{rows.delivered[0]}/replay", data={"csrf": csrf})
    t = outbox_events
    async with engine.connect() as conn:
        copies = (
            await conn.execute(select(t.c.id).where(t.c.replay_of == rows.delivered[0]))
        ).all()
    assert len(copies) == 1
    # The filtered set: counted first, then replayed.
    counted = await (await console.get("/console/replay?state=dead&error=boom")).text()
    assert "Replay 1 dead event" in counted
    answer = await console.post(
        "/console/replay", data={"csrf": csrf, "state": "dead", "error": "boom"}
    )
    assert "1 dead events are pending again" in await answer.text()
    assert (await statuses_of(engine))[rows.dead[1]] == PENDING
    audit = [r for r in records(log) if r.get("action", "").startswith("console.replay")]
    assert [r["operator"] for r in audit] == ["alice", "alice", "alice"]


async def test_marking_dead_purging_and_pausing(
    console: TestClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = capture(monkeypatch, io.StringIO(), log_format="json")
    rows = await every_state(engine)
    csrf = await sign_in(console)
    answer = await console.post(
        f"/console/events/{rows.due}/mark-dead", data={"csrf": csrf, "reason": "bad data"}
    )
    assert answer.status == 200
    assert (await statuses_of(engine))[rows.due] == DEAD
    refused = await (await console.get(f"/console/events/{rows.delivered[0]}/mark-dead")).text()
    assert "only pending events" in refused
    # Purge: dead rows that died before a moment, counted first; pending rows never go.
    t = outbox_events
    async with engine.begin() as conn:
        await conn.execute(update(t).where(t.c.status == DEAD).values(completed_at=1000))
    counted = await (await console.get("/console/purge?before=1d")).text()
    assert "Delete 3 dead events" in counted
    answer = await console.post("/console/purge", data={"csrf": csrf, "before": "1d"})
    assert "3 dead events deleted" in await answer.text()
    left = await statuses_of(engine)
    assert DEAD not in left.values()
    assert list(left.values()).count(DELIVERED) == 2
    # Pause and resume, which every relay reads.
    await console.post("/console/pause", data={"csrf": csrf})
    state = await delivery_state.read_state(engine)
    assert state.paused_by == "alice"
    assert "paused" in await (await console.get("/console")).text()
    await console.post("/console/resume", data={"csrf": csrf})
    assert (await delivery_state.read_state(engine)).paused_at is None
    actions = [r["action"] for r in records(log) if r.get("operator") == "alice"]
    for expected in ("console.mark_dead", "console.purge", "console.pause", "console.resume"):
        assert expected in actions


# -- on or off ------------------------------------------------------------------------------


async def test_off_in_production_unless_configured(
    aiohttp_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = capture(monkeypatch, io.StringIO(), log_format="json")
    client = await aiohttp_client(create_app(settings.replace(environment="production")))
    assert (await client.get("/console")).status == 404
    [off] = [r for r in records(log) if r.get("action") == "console.off"]
    assert "CONSOLE_TOKENS" in off["message"]


async def test_development_prints_a_token_that_signs_in(
    aiohttp_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = capture(monkeypatch, io.StringIO(), log_format="json")
    client = await aiohttp_client(create_app(settings))
    [told] = [r for r in records(log) if r.get("action") == "console.development_token"]
    token = re.search(r"development token (\S+)", told["message"])
    assert token is not None
    await sign_in(client, token.group(1))


async def test_an_allowed_next_auth_session_signs_in(
    make_client: MakeClient, console_settings: Settings, mint: Minter
) -> None:
    configured = console_settings.replace(
        nextauth=NextAuthSettings(secrets=(APP_SECRET,)),
        console=ConsoleSettings(allowed_emails=("ADA@example.com",)),
    )
    client = await make_client(configured)
    minted = mint.one("v4", claims=PROFILE)
    answer = await client.get("/console", headers=minted.header())
    assert answer.status == 200
    assert PROFILE["email"] in await answer.text()
    assert COOKIE_NAME in answer.cookies  # the console's own session from then on
    client.session.cookie_jar.clear()
    other = mint.one("v4", claims={**PROFILE, "email": "mallory@example.com"})
    refused = await client.get("/console/events", headers=other.header())
    assert refused.status == 403
    assert "may not use the console" in await refused.text()


async def test_a_next_auth_session_with_an_allowed_role_signs_in(
    make_client: MakeClient, console_settings: Settings, mint: Minter
) -> None:
    configured = console_settings.replace(
        nextauth=NextAuthSettings(secrets=(APP_SECRET,), user_claims=("role",)),
        console=ConsoleSettings(allowed_roles=("ops",)),
    )
    client = await make_client(configured)
    ops = mint.one("v4", claims={**PROFILE, "role": "ops"})
    assert (await client.get("/console", headers=ops.header())).status == 200
    client.session.cookie_jar.clear()
    viewer = mint.one("v4", claims={**PROFILE, "role": "viewer"})
    assert (await client.get("/console", headers=viewer.header())).status == 403
