"""POST /api and the settings routes, against a real database on each backend."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.http.auth import (
    NO_CREDENTIALS,
    NOT_BEARER,
    UNKNOWN_TOKEN,
    UNREADABLE_SESSION,
    issue_cookie,
)
from service.store.tables import app_settings, outbox_events
from tests.conftest import SECRET, TOKEN, bearer, make_settings
from tests.live_server import ServiceTestServer

USER = {"id": "u-42", "email": "ada@example.com", "name": "Ada"}


def cookie(settings: Settings, user: dict[str, str] = USER) -> dict[str, str]:
    return {"Cookie": f"{settings.session_cookie_name}={issue_cookie(settings, user)}"}


async def rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))
        return [dict(row._mapping) for row in result]


async def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status == status  # type: ignore[attr-defined]
    assert response.content_type == "application/problem+json"  # type: ignore[attr-defined]
    body = json.loads(await response.text())  # type: ignore[attr-defined]
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    assert "Traceback" not in body["detail"]
    return body  # type: ignore[no-any-return]


async def test_post_with_session_writes_the_exact_event(
    client: TestClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            app_settings.insert().values(id=1, document='{"theme":"dark","n":3}', updated_at=1)
        )
    before = time.time_ns() // 1_000_000
    response = await client.post("/api", headers=cookie(settings))
    after = time.time_ns() // 1_000_000
    assert response.status == 200
    body = await response.json()
    assert body["success"] == "true"

    [row] = await rows(engine)
    assert row["id"] == body["id"]
    assert row["status"] == "pending" and row["attempts"] == 0
    event = json.loads(str(row["payload"]))
    assert list(event) == ["id", "name", "v", "ts", "data", "user"]
    assert event["id"] == body["id"]
    assert event["name"] == "openapi/app.sync"
    assert event["v"] == "1"
    assert before <= event["ts"] <= after
    assert event["data"] == {"theme": "dark", "n": 3}
    assert event["user"] == USER
    assert row["created_at"] == event["ts"]


async def test_post_with_token_has_no_user_and_empty_settings(
    client: TestClient, engine: AsyncEngine
) -> None:
    response = await client.post("/api", headers=bearer(), json={"anything": [1, 2]})
    assert response.status == 200
    [row] = await rows(engine)
    event = json.loads(str(row["payload"]))
    assert "user" not in event
    assert event["data"] == {}


@pytest.mark.parametrize(
    ("headers", "detail", "challenge"),
    [
        ({}, NO_CREDENTIALS, 'Bearer realm="service"'),
        (
            {"Authorization": "Bearer wrong-token-0123456789"},
            UNKNOWN_TOKEN,
            'Bearer realm="service", error="invalid_token"',
        ),
        (
            {"Authorization": "Basic " + TOKEN},
            NOT_BEARER,
            'Bearer realm="service", error="invalid_request"',
        ),
        (
            {"Authorization": "Bearer"},
            NOT_BEARER,
            'Bearer realm="service", error="invalid_request"',
        ),
        (
            {"Cookie": "AIOHTTP_SESSION=forged-value"},
            UNREADABLE_SESSION,
            'Bearer realm="service"',
        ),
    ],
    ids=["none", "wrong-token", "wrong-scheme", "empty-token", "forged-cookie"],
)
async def test_missing_or_forged_credentials_are_401_saying_which(
    client: TestClient, engine: AsyncEngine, headers: dict[str, str], detail: str, challenge: str
) -> None:
    response = await client.post("/api", headers=headers)
    body = await assert_problem(response, 401)
    assert body["detail"] == detail
    assert TOKEN not in body["detail"] and "forged-value" not in body["detail"]
    assert response.headers["WWW-Authenticate"] == challenge
    assert await rows(engine) == []


async def test_cookie_under_another_secret_is_401(
    client: TestClient, settings: Settings, engine: AsyncEngine
) -> None:
    other = make_settings(settings.database_url, session_secret="x" * 40)
    await assert_problem(await client.post("/api", headers=cookie(other)), 401)
    assert await rows(engine) == []


async def test_expired_cookie_is_401(
    client: TestClient, settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued_long_ago = time.time() - settings.session_max_age - 60
    monkeypatch.setattr(time, "time", lambda: issued_long_ago)
    old_cookie = cookie(settings)
    monkeypatch.undo()
    await assert_problem(await client.post("/api", headers=old_cookie), 401)
    assert await rows(engine) == []


async def test_previous_secret_is_accepted_during_rotation(
    aiohttp_client,
    settings: Settings,
    engine: AsyncEngine,  # type: ignore[no-untyped-def]
) -> None:
    from service.http.app import create_app

    rotated = settings.replace(session_secret="n" * 40, session_previous_secrets=(SECRET,))
    client = await aiohttp_client(create_app(rotated))
    response = await client.post("/api", headers=cookie(settings))
    assert response.status == 200


BAD_BODIES = {
    "malformed": (b"{not json", "not valid JSON"),
    "array": (b"[1, 2]", "must be a JSON object"),
    "string": (b'"text"', "must be a JSON object"),
    "number": (b"42", "must be a JSON object"),
    "null": (b"null", "must be a JSON object"),
    "not-utf8": (b"\xff\xfe", "not UTF-8"),
    "deep-array": (b"[" * 5000, "nested deeper than 64 levels"),
    "deep-object": (b'{"a":' * 3000 + b"1" + b"}" * 3000, "nested deeper than 64 levels"),
    "bom": (b"\xef\xbb\xbf{}", "byte order mark"),
    "huge-integer": (b'{"a": ' + b"9" * 5000 + b"}", "integer of more than"),
    "nan": (b'{"a": NaN}', "NaN"),
    "huge-float": (b'{"a": 1e999}', "too large for a double"),
    "lone-surrogate": (b'{"a": "\\udfff"}', "lone UTF-16 surrogate"),
}


@pytest.mark.parametrize(("body", "says"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize(("method", "path"), [("POST", "/api"), ("PUT", "/api/settings")])
async def test_bad_bodies_are_400_saying_why(
    client: TestClient, engine: AsyncEngine, method: str, path: str, body: bytes, says: str
) -> None:
    response = await client.request(method, path, headers=bearer(), data=body)
    problem = await assert_problem(response, 400)
    assert says in str(problem["detail"])
    assert await rows(engine) == []


async def test_oversized_body_is_413(
    client: TestClient, settings: Settings, engine: AsyncEngine
) -> None:
    big = json.dumps({"x": "a" * settings.max_body_bytes}).encode()
    await assert_problem(await client.post("/api", headers=bearer(), data=big), 413)
    assert await rows(engine) == []


async def test_empty_body_is_accepted(client: TestClient, engine: AsyncEngine) -> None:
    response = await client.post("/api", headers=bearer(), data=b"")
    assert response.status == 200
    assert len(await rows(engine)) == 1


async def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    await assert_problem(await client.get("/nowhere"), 404)
    response = await client.get("/api")
    await assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


async def test_concurrent_posts_each_get_their_own_committed_row(
    client: TestClient, engine: AsyncEngine
) -> None:

    responses = await asyncio.gather(*(client.post("/api", headers=bearer()) for _ in range(50)))
    ids = {(await r.json())["id"] for r in responses}
    assert all(r.status == 200 for r in responses)
    assert len(ids) == 50
    assert {row["id"] for row in await rows(engine)} == ids


async def test_put_settings_commits_document_and_event_together(
    client: TestClient, engine: AsyncEngine
) -> None:
    response = await client.put("/api/settings", headers=bearer(), json={"plan": "pro"})
    assert response.status == 200
    event_id = (await response.json())["id"]
    [row] = await rows(engine)
    assert row["id"] == event_id
    assert json.loads(str(row["payload"]))["data"] == {"plan": "pro"}
    got = await client.get("/api/settings", headers=bearer())
    assert await got.json() == {"plan": "pro"}


async def test_put_settings_needs_an_internal_token(client: TestClient, settings: Settings) -> None:
    await assert_problem(
        await client.put("/api/settings", headers=cookie(settings), json={"a": 1}), 403
    )
    await assert_problem(await client.put("/api/settings", json={"a": 1}), 401)
    await assert_problem(await client.put("/api/settings", headers=bearer(), data=b"[]"), 400)
    await assert_problem(await client.put("/api/settings", headers=bearer(), data=b""), 400)


async def test_put_settings_writes_neither_when_the_event_fails(
    client: TestClient, engine: AsyncEngine, backend: str
) -> None:
    # A trigger that refuses outbox inserts makes the second write of the transaction fail.
    async with engine.begin() as conn:
        if backend == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON outbox_events "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON outbox_events "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
    response = await client.put("/api/settings", headers=bearer(), json={"plan": "pro"})
    body = await assert_problem(response, 503)
    assert "refused" not in str(body["detail"])
    async with engine.connect() as conn:
        assert (await conn.execute(select(app_settings))).all() == []
    assert await rows(engine) == []


async def test_health_and_ready(client: TestClient) -> None:
    assert (await client.get("/health")).status == 200
    response = await client.get("/ready")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


async def test_headers_over_the_limit_are_a_431_problem_before_any_handler(
    aiohttp_client,
    settings: Settings,
    engine: AsyncEngine,  # type: ignore[no-untyped-def]
) -> None:
    from service.http.app import create_app

    client = await aiohttp_client(ServiceTestServer(create_app(settings), settings))
    # Node's default limit: 16 KiB of request line and headers together, not 8 KiB a line.
    under = await client.post("/api", headers={**bearer(), "X-Padding": "p" * 15_000})
    assert under.status == 200
    limit = f"MAX_HEADER_BYTES ({settings.max_header_bytes} bytes)"
    for headers, path in [
        ({**bearer(), "X-Padding": "p" * 17_000}, "/api"),  # one line: the parser's refusal
        ({**bearer(), "X-A": "p" * 9000, "X-B": "p" * 9000}, "/api"),  # together: the app's
        (bearer(), "/api?" + "q" * 17_000),
    ]:
        body = await assert_problem(await client.post(path, headers=headers), 431)
        assert limit in body["detail"]
    assert len(await rows(engine)) == 1


@pytest.mark.parametrize(
    "header",
    [b"Authorization: Bearer \xff\xfe", b"Cookie: AIOHTTP_SESSION=\xff\xfe"],
    ids=["bearer", "cookie"],
)
async def test_undecodable_credentials_are_401(
    client: TestClient, engine: AsyncEngine, header: bytes
) -> None:
    assert (await post_raw(client, header)).startswith(b"HTTP/1.1 401")
    assert await rows(engine) == []


async def post_raw(client: TestClient, header: bytes) -> bytes:
    """The status line of ``POST /api`` with ``header`` as raw bytes on the socket (a client
    library would encode the header for us)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /api HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n" + header)
    writer.write(b"\r\nConnection: close\r\n\r\n")
    status_line = await reader.readline()
    writer.close()
    return status_line


async def test_a_long_user_id_is_accepted(client: TestClient, settings: Settings) -> None:
    long_user = {"id": "u" * 1000}
    response = await client.post(
        "/api", headers={**cookie(settings, long_user), "Idempotency-Key": "k"}
    )
    assert response.status == 200
