"""``POST /e/{key}`` against a real database on each backend: Inngest's answers and rules, the
rows it stores, repeats across replicas, and what operators see of them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import EventApiSettings, Settings
from service.events.inngest_ids import event_ids
from service.http.app import create_app
from service.store import outbox_admin
from service.store.event_filter import EventFilter
from service.store.tables import outbox_events
from tests.outage import unwritable

KEY = "app-event-key-0123456789"
SEED = "1796157941316,Vgwc55+HoVdJwA=="
TS = 1_800_000_000_000


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.replace(
        event_api=EventApiSettings(
            keys=(KEY, "second-key"), max_event_bytes=2048, max_body_bytes=128 * 1024
        )
    )


@pytest.fixture
async def api(aiohttp_client, app_settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(app_settings))


async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))
        return [dict(row._mapping) for row in result]


async def post(api: TestClient, body: Any, key: str = KEY, **headers: str) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await api.post(f"/e/{key}", data=data, headers=headers)
    assert response.content_type == "application/json"
    return response.status, json.loads(await response.text())


async def test_a_batch_is_stored_as_sent_and_answered_with_its_ids(
    api: TestClient, engine: AsyncEngine
) -> None:
    events = [
        {
            "name": "app/a",
            "data": {"x": 1},
            "user": {"id": "u"},
            "v": "1",
            "ts": TS,
            "meta": {"m": 1},
            "extra": [1, "é"],
        },
        {"name": "app/b"},
        {"name": "app/c", "id": "mine", "data": None, "ts": 0},
    ]
    response = await api.post(f"/e/{KEY}?ignored=1", data=json.dumps(events))
    text = await response.text()
    assert response.status == 200 and response.content_type == "application/json"
    answer = json.loads(text)
    assert list(answer) == ["ids", "status"] and answer["status"] == 200  # no "error" at all
    ids = answer["ids"]
    assert len(ids) == 3 and all(len(i) == 26 for i in ids)
    stored = await rows(engine)
    assert [row["id"] for row in stored] == ids
    assert [row["name"] for row in stored] == ["app/a", "app/b", "app/c"]
    received_at = stored[0]["created_at"]
    payloads = [json.loads(row["payload"]) for row in stored]
    assert payloads[0] == {**events[0], "id": ids[0]}
    assert payloads[1] == {"name": "app/b", "ts": received_at, "data": {}, "id": ids[1]}
    assert payloads[2] == {"name": "app/c", "id": "mine", "data": {}, "ts": received_at}
    assert {row["status"] for row in stored} == {"pending"}
    assert {row["env"] for row in stored} == {None}


async def test_one_event_object_any_content_type(api: TestClient, engine: AsyncEngine) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        status, answer = await post(api, {"name": "app/one"}, **{"Content-Type": content_type})
        assert status == 200 and len(answer["ids"]) == 1
    status, answer = await post(api, [])
    assert (status, answer) == (200, {"ids": [], "status": 200})
    assert len(await rows(engine)) == 3


async def test_seeded_ids_and_repeats_racing_on_two_replicas(
    aiohttp_client,
    app_settings: Settings,
    engine: AsyncEngine,  # type: ignore[no-untyped-def]
) -> None:
    replicas = [await aiohttp_client(create_app(app_settings)) for _ in range(2)]
    events = [{"name": f"app/e{n}", "data": {"n": n}} for n in range(3)]
    sends = [post(replicas[n % 2], events, **{"x-inngest-event-id-seed": SEED}) for n in range(10)]
    answers = await asyncio.gather(*sends)
    expected = event_ids(SEED, 3, 0)
    assert all(answer == (200, {"ids": expected, "status": 200}) for answer in answers)
    assert [row["id"] for row in await rows(engine)] == expected


async def test_keys(aiohttp_client, settings: Settings, api: TestClient) -> None:  # type: ignore[no-untyped-def]
    assert await post(api, {"name": "app/x"}, key="wrong") == (
        401,
        {"ids": [], "status": 401, "error": "Event key not found"},
    )
    assert (await post(api, {"name": "app/x"}, key="second-key"))[0] == 200
    development = await aiohttp_client(create_app(settings))
    assert (await post(development, {"name": "app/x"}, key="anything"))[0] == 200
    production = await aiohttp_client(create_app(settings.replace(environment="production")))
    status, answer = await post(production, {"name": "app/x"}, key="anything")
    assert status == 404 and "EVENT_API_KEYS" in answer["error"] and answer["ids"] == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "Request body must contain an event object or an array of event objects"),
        (b"5", "Request body must contain an event object or an array of event objects"),
        (b"[{]", "The body is not valid JSON"),
        ([{"name": "a/b"}, 7], "event 2: an event must be a JSON object"),
        ([{"name": "a/b"}, {"name": ""}], "event 2: event name is empty"),
        ([{"data": {}}], "event 1: event name is empty"),
        ([{"name": 5}], "event 1: name must be a string, not a number"),
        ([{"name": "InNgEsT/x"}], "event 1: event name is reserved for internal use: InNgEsT/x"),
        ([{"name": "n" * 257}], "event 1: event name is longer than 256 characters"),
        ([{"name": "a/b", "ts": 1.5e12 + 0.5}], "event 1: ts must be an integer"),
        ([{"name": "a/b", "ts": "1"}], "event 1: ts must be an integer"),
        ([{"name": "a/b", "ts": 315_532_799_999}], "event 1: timestamp is before Jan 1, 1980"),
        ([{"name": "a/b", "ts": 4_102_444_800_001}], "event 1: timestamp is after Jan 1, 2100"),
        ([{"name": "a/b", "data": [1]}], "event 1: data must be an object, not an array"),
        ([{"name": "a/b", "user": "u"}], "event 1: user must be an object, not a string"),
        ([{"name": "a/b", "id": 5}], "event 1: id must be a string, not a number"),
        ([{"name": "a/b", "v": True}], "event 1: v must be a string, not a boolean"),
        ([{"name": "a/b"}] * 5001, "Cannot have more than 5000 events in a batch"),
        (
            [{"name": "a/b"}, {"name": "a/c", "data": {"x": "y" * 2048}}],
            "event 2: Event is over the max size: Max 2048 bytes / Size",
        ),
    ],
    ids=lambda v: str(v)[:30] if isinstance(v, str) else None,
)
async def test_a_refused_batch_stores_nothing(
    api: TestClient, engine: AsyncEngine, body: Any, error: str
) -> None:
    status, answer = await post(api, body)
    assert status == 400 and answer["ids"] == [] and answer["status"] == 400
    assert answer["error"].startswith(error), answer["error"]
    assert await rows(engine) == []


async def test_bodies_beyond_the_limit_are_413(api: TestClient, engine: AsyncEngine) -> None:
    big = [{"name": "a/b", "data": {"x": "y" * 1500}}] * 100
    status, answer = await post(api, big)
    assert status == 413 and answer["error"] == "The request body is larger than 131072 bytes"

    async def chunked() -> Any:  # no Content-Length: the limit holds as the body streams in
        for _ in range(200):
            yield b" " * 1024

    response = await api.post(f"/e/{KEY}", data=chunked())
    assert response.status == 413
    assert await rows(engine) == []


async def test_the_environment_is_stored(api: TestClient, engine: AsyncEngine) -> None:
    assert (await post(api, {"name": "a/b"}, **{"x-inngest-env": " feature/x "}))[0] == 200
    status, answer = await post(api, {"name": "a/b"}, **{"x-inngest-env": "e" * 257})
    assert status == 400 and "x-inngest-env" in answer["error"]
    assert [row["env"] for row in await rows(engine)] == ["feature/x"]


async def test_a_database_that_cannot_write_is_a_503(
    api: TestClient, backend: str, database_url: str, engine: AsyncEngine
) -> None:
    async with unwritable(backend, database_url):
        response = await api.post(f"/e/{KEY}", json={"name": "a/b"})
    answer = await response.json()
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert answer["ids"] == [] and "retry later" in answer["error"]
    assert await rows(engine) == []


async def test_operators_see_count_and_replay_them(api: TestClient, engine: AsyncEngine) -> None:
    headers = {"x-inngest-event-id-seed": SEED, "x-inngest-env": "br"}
    _, answer = await post(api, [{"name": "app/seen"}, {"name": "app/other"}], **headers)
    await post(api, [{"name": "app/seen"}, {"name": "app/other"}], **headers)  # a repeat
    [listed] = await outbox_admin.list_events(engine, EventFilter(name="app/seen"), 5)
    assert (listed.id, listed.env) == (answer["ids"][0], "br")
    shown = await outbox_admin.get_event(engine, answer["ids"][1])
    assert json.loads(shown.payload or "")["name"] == "app/other"
    metrics = await (await api.get("/metrics")).text()
    assert "outbox_events_accepted_total 2.0" in metrics
    assert 'http_requests_total{route="/e/{key}",status="200"} 2.0' in metrics
    async with engine.begin() as conn:
        await conn.execute(outbox_events.update().values(status="delivered", completed_at=1))
    [results] = [r async for r in outbox_admin.replay_ids(engine, [listed.id])]
    [copy] = [row for row in await rows(engine) if row["replay_of"] == listed.id]
    assert results[0].new_id == copy["id"] and copy["env"] == "br" and copy["name"] == "app/seen"


async def test_start_up_says_when_the_route_is_off(
    aiohttp_client,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    await aiohttp_client(create_app(settings.replace(environment="production")))
    [line] = [r for r in caplog.records if getattr(r, "action", "") == "event_api.off"]
    assert line.levelname == "WARNING" and "EVENT_API_KEYS" in line.getMessage()
