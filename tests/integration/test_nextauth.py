"""POST /api with the Next.js app's own session cookie, made by next-auth 4's and @auth/core's
code, on SQLite and on PostgreSQL: the event carries the session's user, configured by the
app's own variables; every bad cookie is a 401 problem that names no secret and quotes no
token, and writes nothing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import NextAuthSettings, Settings
from service.http import nextauth
from service.http.app import create_app
from service.http.auth import NO_CREDENTIALS, UNKNOWN_TOKEN, issue_cookie
from service.http.keys import NEXTAUTH
from service.http.nextauth import NextAuthReader
from tests.conftest import bearer
from tests.integration.test_api import assert_problem, post_raw, rows
from tests.integration.test_nextauth_reader import BIG, ROTATION, Clock
from tests.live_server import ServiceTestServer
from tests.nextauth_cookies import APP_SECRET, OTHER_SECRET, PROFILE, PROFILE_USER, Minter, spec

V5 = "authjs.session-token"
# A 6 KB claim: three cookie chunks, ~9 KB of Cookie header, which Node's 16 KiB takes.
THREE = {**PROFILE, "groups": [f"group-{n:04d}" for n in range(500)]}
AppClient = Callable[..., Awaitable[tuple[TestClient, Clock]]]


@pytest.fixture
def app_client(aiohttp_client: Any, settings: Settings) -> AppClient:
    """A client of the app on the test's database with next-auth sessions read by the given
    variables (``env``, through ``Settings.from_env``) or settings, on a clock the test holds
    (the present unless told)."""

    async def make(
        env: dict[str, str] | None = None, now: float | None = None, **fields: Any
    ) -> tuple[TestClient, Clock]:
        if env is not None:
            chosen = Settings.from_env({"DATABASE_URL": settings.database_url, **env}).nextauth
        else:
            chosen = NextAuthSettings(secrets=fields.pop("secrets", (APP_SECRET,)), **fields)
        configured = settings.replace(nextauth=chosen)
        app = create_app(configured)
        clock = Clock(time.time() if now is None else now)
        app[NEXTAUTH] = NextAuthReader(configured.nextauth, clock=clock)
        # The server of `service serve`: its header limit, as a browser meets it.
        return await aiohttp_client(ServiceTestServer(app, configured)), clock

    return make


async def event_user(engine: AsyncEngine, response: Any) -> Any:
    """The ``user`` of the one event in the outbox, which ``response`` acknowledged."""
    assert response.status == 200, await response.text()
    [row] = await rows(engine)
    event = json.loads(str(row["payload"]))
    assert event["id"] == (await response.json())["id"]
    return event.get("user")


async def refused(response: Any, detail: str, *never: str) -> None:
    """A 401 problem with ``detail`` that quotes none of ``never`` (nor the app's secret)."""
    body = await assert_problem(response, 401)
    assert body["detail"] == detail
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for text in (APP_SECRET, *never):
        assert text not in json.dumps(body) and text not in str(response.headers)


ACCEPTED = {
    "v4": spec("v4", claims=PROFILE),
    "v4-secure": spec("v4", secure=True, claims=PROFILE),
    "v4-chunked": spec("v4", claims=BIG),
    "v5": spec("v5", claims=PROFILE),
    "v5-secure": spec("v5", secure=True, claims=PROFILE),
    "v5-chunked": spec("v5", claims=BIG),
    "v5-gcm": spec("v5-gcm", claims=PROFILE),
    "v5-gcm-secure": spec("v5-gcm", secure=True, claims=PROFILE),
    "v4-three-chunks": spec("v4", claims=THREE),
    "v5-three-chunks": spec("v5", claims=THREE),
}


@pytest.mark.parametrize("case", ACCEPTED)
async def test_the_event_carries_the_sessions_user(
    app_client: AppClient, engine: AsyncEngine, mint: Minter, case: str
) -> None:
    [minted] = mint(ACCEPTED[case])
    client, _ = await app_client()
    # Chunks in whatever order the browser sends them.
    response = await client.post("/api", headers=minted.header(minted.cookies[::-1]))
    assert await event_user(engine, response) == PROFILE_USER


@pytest.mark.parametrize("kind", ["v4", "v5"])
async def test_three_chunks_are_taken_and_a_header_over_the_limit_is_a_431(
    app_client: AppClient, engine: AsyncEngine, mint: Minter, kind: str
) -> None:
    three, over = mint(spec(kind, claims=THREE), spec(kind, claims={**THREE, "pad": "p" * 9000}))
    assert len(three.cookies) == 3 and 8 * 1024 < len(three.header()["Cookie"]) < 16 * 1024
    client, _ = await app_client()
    assert await event_user(engine, await client.post("/api", headers=three.header())) == (
        PROFILE_USER
    )
    body = await assert_problem(await client.post("/api", headers=over.header()), 431)
    assert "MAX_HEADER_BYTES (16384 bytes)" in body["detail"]


@pytest.mark.parametrize("kind", ["v4", "v5"])
async def test_expiry_and_not_before_with_next_auths_tolerance(
    app_client: AppClient, engine: AsyncEngine, mint: Minter, kind: str
) -> None:
    minted = mint.one(kind, claims=PROFILE)
    client, clock = await app_client(now=minted.exp + 14)
    assert (await client.post("/api", headers=minted.header())).status == 200
    clock.now = minted.exp + 15
    await refused(await client.post("/api", headers=minted.header()), nextauth.EXPIRED)
    not_before = 4_000_000_000
    early = mint.one(kind, claims={**PROFILE, "nbf": not_before}, maxAge=10**10)
    clock.now = not_before - 16
    await refused(await client.post("/api", headers=early.header()), nextauth.NOT_YET_VALID)
    clock.now = not_before - 15
    assert (await client.post("/api", headers=early.header())).status == 200
    assert len(await rows(engine)) == 2


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "wrong-secret-v4": (spec("v4", OTHER_SECRET, claims=PROFILE), nextauth.UNDECRYPTABLE),
    "wrong-secret-v5": (spec("v5", OTHER_SECRET, claims=PROFILE), nextauth.UNDECRYPTABLE),
    "expired-v4": (spec("v4", claims=PROFILE, maxAge=-60), nextauth.EXPIRED),
    "expired-v5": (spec("v5", claims=PROFILE, maxAge=-60), nextauth.EXPIRED),
    "no-exp": (spec("no-exp", claims=PROFILE), nextauth.NO_EXPIRY),
    "jws": (spec("jws", claims=PROFILE), nextauth.SIGNED),
    "alg-none": (spec("alg-none", claims=PROFILE), nextauth.SIGNED),
    "other-alg": (spec("other-alg", claims=PROFILE), nextauth.UNSUPPORTED),
    "other-enc": (spec("other-enc", claims=PROFILE), nextauth.UNSUPPORTED),
    "zip": (spec("zip", claims=PROFILE), nextauth.UNSUPPORTED),
    "database-session": (spec("database"), nextauth.DATABASE_SESSION),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_a_bad_session_cookie_is_a_401_that_writes_nothing(
    app_client: AppClient, engine: AsyncEngine, mint: Minter, case: str
) -> None:
    made, detail = REFUSED[case]
    [minted] = mint(made)
    client, _ = await app_client()
    await refused(await client.post("/api", headers=minted.header()), detail, minted.token)
    assert await rows(engine) == []


def base64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def tampered(token: str) -> str:
    """``token`` with one character of its ciphertext changed."""
    parts = token.split(".")
    middle = len(parts[3]) // 2
    other = "A" if parts[3][middle] != "A" else "B"
    parts[3] = parts[3][:middle] + other + parts[3][middle + 1 :]
    return ".".join(parts)


def broken_cookies(
    whole: tuple[tuple[str, str], ...], chunked: tuple[tuple[str, str], ...]
) -> dict[str, tuple[list[tuple[str, str]], str]]:
    """Cookies of next-auth's tokens, broken the ways a client may break them."""
    [(name, token)] = whole
    return {
        "garbage": ([(V5, "not-a-session")], nextauth.NOT_A_TOKEN),
        "five-garbage-parts": ([(V5, "a.b.c.d.e")], nextauth.NOT_A_TOKEN),
        "tampered": ([(name, tampered(token))], nextauth.UNDECRYPTABLE),
        "truncated": ([(name, token[:-10])], nextauth.UNDECRYPTABLE),
        "missing-chunk-0": ([c for c in chunked if not c[0].endswith(".0")], ""),
        "missing-chunk-1": ([c for c in chunked if not c[0].endswith(".1")], ""),
        "whole-and-chunked": ([*whole, *chunked], nextauth.BOTH_FORMS),
    }


BROKEN = [
    "garbage",
    "five-garbage-parts",
    "tampered",
    "truncated",
    "missing-chunk-0",
    "missing-chunk-1",
    "whole-and-chunked",
]


@pytest.mark.parametrize("case", BROKEN)
async def test_a_broken_session_cookie_is_a_401_that_writes_nothing(
    app_client: AppClient, engine: AsyncEngine, mint: Minter, case: str
) -> None:
    minted, chunked = mint(spec("v5", claims=PROFILE), spec("v5", claims=BIG))
    cookies, detail = broken_cookies(minted.cookies, chunked.cookies)[case]
    if case.startswith("missing-chunk"):
        detail = f"The session cookie {V5} is incomplete: its chunk .{case[-1]} is missing."
    client, _ = await app_client()
    headers = minted.header(cookies)
    await refused(await client.post("/api", headers=headers), detail, minted.token, chunked.token)
    assert await rows(engine) == []


async def test_undecodable_cookie_bytes_are_401(app_client: AppClient, engine: AsyncEngine) -> None:
    client, _ = await app_client()
    status_line = await post_raw(client, b"Cookie: authjs.session-token=\xff\xfe")
    assert status_line.startswith(b"HTTP/1.1 401")
    assert await rows(engine) == []


async def test_v4s_name_for_the_secret(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    client, _ = await app_client(env={"NEXTAUTH_SECRET": APP_SECRET})
    minted = mint.one("v4", claims=PROFILE)
    assert await event_user(engine, await client.post("/api", headers=minted.header())) == (
        PROFILE_USER
    )


async def test_the_secrets_of_a_rotation(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    env = {
        "AUTH_SECRET": APP_SECRET,
        **{f"AUTH_SECRET_{n}": s for n, s in enumerate(ROTATION, start=1)},
    }
    client, _ = await app_client(env=env)
    accepted = [
        mint.one(kind, secret, claims=PROFILE) for kind in ("v4", "v5") for secret in ROTATION
    ]
    # Auth.js's own rotation: the first of its secrets encrypts, the others still decrypt.
    accepted.append(mint.one("v5", [ROTATION[2], APP_SECRET], claims=PROFILE))
    for minted in accepted:
        assert (await client.post("/api", headers=minted.header())).status == 200
    assert len(await rows(engine)) == len(accepted)
    outsider = mint.one("v5", OTHER_SECRET, claims=PROFILE)
    await refused(await client.post("/api", headers=outsider.header()), nextauth.UNDECRYPTABLE)


async def test_the_apps_rotation_variables_as_auth_js_reads_them(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    env = {"AUTH_SECRET": APP_SECRET, **{f"AUTH_SECRET_{n}": s for n, s in enumerate(ROTATION, 1)}}
    client, _ = await app_client(env=env)
    minted = mint.one("v5", env=env, claims=PROFILE)
    assert await event_user(engine, await client.post("/api", headers=minted.header())) == (
        PROFILE_USER
    )
    # Auth.js puts AUTH_SECRET_3 first (it unshifts 1, 2, 3 before AUTH_SECRET) and encrypts
    # with it: what SECURITY.md tells operators about rotating.
    kid = json.loads(base64url(minted.token.split(".")[0]))["kid"]
    assert kid == NextAuthReader(NextAuthSettings()).keys.get(ROTATION[2], V5, 64).kid


@pytest.mark.parametrize("kind", ["v4", "v5"])
async def test_a_renamed_session_cookie(
    app_client: AppClient, engine: AsyncEngine, mint: Minter, kind: str
) -> None:
    client, _ = await app_client(env={"AUTH_SECRET": APP_SECRET, "NEXTAUTH_COOKIE_NAME": "app.sid"})
    default = mint.one(kind, claims=PROFILE)
    await refused(await client.post("/api", headers=default.header()), NO_CREDENTIALS)
    renamed = mint.one(kind, cookieName="app.sid", claims=PROFILE)
    assert await event_user(engine, await client.post("/api", headers=renamed.header())) == (
        PROFILE_USER
    )


async def test_further_claims_of_the_apps_jwt_callback(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    env = {"AUTH_SECRET": APP_SECRET, "NEXTAUTH_USER_CLAIMS": "role,orgId,missing"}
    client, _ = await app_client(env=env)
    claims = {"sub": "u-7", "email": "grace@example.com", "role": "admin", "orgId": 12, "x": 1}
    minted = mint.one("v5", claims=claims)
    assert await event_user(engine, await client.post("/api", headers=minted.header())) == {
        "id": "u-7",
        "email": "grace@example.com",
        "role": "admin",
        "orgId": 12,
    }


async def test_a_bearer_caller_forwarding_the_session_gives_the_event_its_user(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    client, _ = await app_client()
    minted = mint.one("v5", claims=PROFILE)
    response = await client.post("/api", headers={**bearer(), **minted.header()})
    assert await event_user(engine, response) == PROFILE_USER


async def test_every_credential_sent_must_check_out(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    client, _ = await app_client()
    good, bad = mint.one("v5", claims=PROFILE), mint.one("v5", OTHER_SECRET, claims=PROFILE)
    wrong_token = {"Authorization": "Bearer wrong-token-0123456789abcdef"}
    await refused(
        await client.post("/api", headers={**wrong_token, **good.header()}), UNKNOWN_TOKEN
    )
    await refused(
        await client.post("/api", headers={**bearer(), **bad.header()}), nextauth.UNDECRYPTABLE
    )
    assert await rows(engine) == []


async def test_one_idempotency_key_from_two_forwarded_users_is_two_events(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    client, _ = await app_client()
    ada = mint.one("v5", claims=PROFILE)
    grace = mint.one("v5", claims={**PROFILE, "sub": "u-43", "name": "Grace"})
    key = {**bearer(), "Idempotency-Key": "sync-1"}
    answers = [await client.post("/api", headers={**key, **m.header()}) for m in (ada, grace, ada)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[2].headers.get("Idempotent-Replayed") == "true"
    users = [json.loads(str(r["payload"]))["user"]["id"] for r in await rows(engine)]
    assert users == ["u-42", "u-43"]


async def test_the_services_own_session_keeps_working(
    app_client: AppClient, settings: Settings, engine: AsyncEngine, mint: Minter
) -> None:
    client, _ = await app_client()
    own = {settings.session_cookie_name: issue_cookie(settings, {"id": "u-1", "name": "Own"})}
    cookie = "; ".join(f"{k}={v}" for k, v in own.items())
    response = await client.post("/api", headers={"Cookie": cookie})
    assert await event_user(engine, response) == {"id": "u-1", "name": "Own"}
    # Both sent: the Next.js app's session is the one read.
    minted = mint.one("v5", claims=PROFILE)
    assert (
        await client.post("/api", headers=minted.header([*own.items(), *minted.cookies]))
    ).status == 200
    payloads = [json.loads(str(r["payload"])) for r in await rows(engine)]
    assert payloads[1]["user"] == PROFILE_USER


async def test_without_the_apps_secret_next_auth_cookies_are_no_credential(
    app_client: AppClient, engine: AsyncEngine, mint: Minter
) -> None:
    client, _ = await app_client(env={})
    minted = mint.one("v5", claims=PROFILE)
    await refused(await client.post("/api", headers=minted.header()), NO_CREDENTIALS)
    assert await rows(engine) == []


async def test_a_session_caller_may_not_touch_the_settings(
    app_client: AppClient, mint: Minter
) -> None:
    client, _ = await app_client()
    minted = mint.one("v5", claims=PROFILE)
    await assert_problem(await client.get("/api/settings", headers=minted.header()), 403)
    forwarded = {**bearer(), **minted.header()}
    assert (await client.get("/api/settings", headers=forwarded)).status == 200
    assert (await client.get("/api/settings", headers=bearer())).status == 200
