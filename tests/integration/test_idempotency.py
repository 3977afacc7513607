"""Idempotency-Key on POST /api: repeats answer the first response and enqueue nothing."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.http.app import create_app
from service.store.idempotency import purge_expired
from service.store.tables import idempotency_keys, outbox_events
from tests.conftest import SQLITE_ONLY, bearer
from tests.integration.test_api import assert_problem, cookie


async def count(engine: AsyncEngine, table: object = outbox_events) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)))  # type: ignore[arg-type]


def keyed(key: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers if headers is not None else bearer()), "Idempotency-Key": key}


async def test_a_repeat_answers_the_first_response_and_enqueues_nothing(
    client: TestClient, engine: AsyncEngine
) -> None:
    first = await client.post("/api", headers=keyed("order-1"))
    again = await client.post("/api", headers=keyed("order-1"))
    assert first.status == again.status == 200
    assert await first.json() == await again.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await count(engine) == 1
    other = await client.post("/api", headers=keyed("order-2"))
    assert (await other.json())["id"] != (await first.json())["id"]
    assert await count(engine) == 2


async def test_the_same_key_from_another_caller_is_independent(
    client: TestClient, settings: Settings, engine: AsyncEngine
) -> None:
    by_token = await client.post("/api", headers=keyed("shared"))
    by_user = await client.post("/api", headers=keyed("shared", cookie(settings)))
    by_other_user = await client.post(
        "/api", headers=keyed("shared", cookie(settings, {"id": "someone-else"}))
    )
    ids = {(await r.json())["id"] for r in (by_token, by_user, by_other_user)}
    assert len(ids) == 3
    assert await count(engine) == 3


async def test_concurrent_repeats_create_one_event(client: TestClient, engine: AsyncEngine) -> None:
    answers = await asyncio.gather(
        *(client.post("/api", headers=keyed("burst")) for _ in range(20))
    )
    assert {r.status for r in answers} == {200}
    assert len({(await r.json())["id"] for r in answers}) == 1
    assert await count(engine) == 1


async def test_concurrent_repeats_across_two_processes_create_one_event(
    aiohttp_client,
    settings: Settings,
    engine: AsyncEngine,  # type: ignore[no-untyped-def]
) -> None:
    # Two apps, two writers, one database: the unique key decides, as between replicas.
    clients = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    answers = await asyncio.gather(
        *(clients[n % 2].post("/api", headers=keyed("replicas")) for n in range(10))
    )
    assert {r.status for r in answers} == {200}
    assert len({(await r.json())["id"] for r in answers}) == 1
    assert await count(engine) == 1


async def test_expired_keys_start_afresh_and_are_purged(
    aiohttp_client,
    settings: Settings,
    engine: AsyncEngine,  # type: ignore[no-untyped-def]
) -> None:
    client = await aiohttp_client(create_app(settings.replace(idempotency_ttl=0.05)))
    first = await (await client.post("/api", headers=keyed("short-lived"))).json()
    await asyncio.sleep(0.1)
    second = await (await client.post("/api", headers=keyed("short-lived"))).json()
    assert first["id"] != second["id"]
    assert await count(engine) == 2
    await asyncio.sleep(0.1)
    assert await purge_expired(engine) == 1
    assert await count(engine, idempotency_keys) == 0


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "naïve", "tab\there"], ids=["empty", "long", "non-ascii", "control"]
)
async def test_malformed_keys_are_400(client: TestClient, engine: AsyncEngine, key: str) -> None:
    response = await client.post("/api", headers=keyed(key))
    await assert_problem(response, 400)
    assert await count(engine) == 0


@SQLITE_ONLY
async def test_a_failed_first_attempt_leaves_the_key_free(
    client: TestClient, database_url: str, backend: str, engine: AsyncEngine
) -> None:
    holder = sqlite3.connect(str(make_url(database_url).database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        await assert_problem(await client.post("/api", headers=keyed("retry-me")), 503)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    retried = await client.post("/api", headers=keyed("retry-me"))
    assert retried.status == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert await count(engine) == 1
