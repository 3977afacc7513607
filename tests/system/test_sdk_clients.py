"""Inngest's official SDKs (JS 4 and 3, Python) send through a running service to the test
suite's stand-in Event API, on SQLite and on PostgreSQL: what arrives is what each SDK sent,
with the ids the service answered; refusals, retries and an unavailable database answer the
SDKs as Inngest would, and store nothing twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import EventApiSettings, Settings
from service.events.inngest_ids import event_ids
from service.store.tables import outbox_events
from tests.fake_inngest import FakeInngest, running_fake
from tests.live_server import LiveServer
from tests.lossy_proxy import lossy_proxy
from tests.outage import unwritable
from tests.relay_harness import EVENT_KEY, relay_in_background, relay_settings
from tests.sdk_clients import CLIENTS, Sent, as_sent, require_client, send

APP_KEY = "app-event-key-0123456789"
MAX_EVENT_BYTES = 4096
NOW = int(time.time() * 1000)

pytestmark = pytest.mark.parametrize("client", CLIENTS)


@pytest.fixture(autouse=True)
def _client_available(client: str) -> None:
    require_client(client)


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.replace(
        event_api=EventApiSettings(keys=(APP_KEY,), max_event_bytes=MAX_EVENT_BYTES),
        sqlite_busy_timeout_ms=200,
    )


@pytest.fixture
def service_url(app_settings: Settings) -> Iterator[str]:
    with LiveServer(app_settings) as server:
        yield server.url


@pytest.fixture
async def stand_in(app_settings: Settings, engine: AsyncEngine) -> AsyncIterator[FakeInngest]:
    """The stand-in Event API, with a relay delivering the outbox to it."""
    async with running_fake(event_key=EVENT_KEY) as fake:
        async with relay_in_background(relay_settings(app_settings, fake.origin), engine):
            yield fake


async def stored(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))
        return [dict(row._mapping) for row in result]


def sdk_body(sent: Sent, client: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the SDK put on the wire: the JS body as recorded, the Python SDK's as it builds it."""
    if client == "python":
        return as_sent(client, events)
    bodies = {attempt["body"] for attempt in sent.attempts}
    assert len(bodies) == 1, "every attempt of a send carries the same body"
    document: list[dict[str, Any]] = json.loads(bodies.pop())
    return document


def with_ids(events: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """``events`` as the service relays them: ``id`` set to the answered one where none was."""
    return [{**event, "id": event.get("id") or i} for event, i in zip(events, ids, strict=True)]


async def test_a_batch_arrives_as_the_sdk_sent_it(
    client: str, service_url: str, stand_in: FakeInngest, engine: AsyncEngine
) -> None:
    events: list[dict[str, Any]] = [
        {"name": "app/user.created", "data": {"id": 7, "tags": ["a", "é"]}, "ts": NOW},
        {"name": "app/order.paid", "data": {"total": 12.5}, "id": "order-42", "ts": NOW + 1},
        {"name": "app/ping", "ts": NOW + 2},
    ]
    if client != "python":  # the Python SDK has no v and user, and drops unknown fields
        events[0] |= {"v": "2024-01-01.1", "user": {"id": "u-1"}, "extra": {"kept": True}}
    sent = await send(client, service_url, APP_KEY, events)
    assert sent.error is None and sent.ids is not None

    expected = with_ids(sdk_body(sent, client, events), sent.ids)
    await stand_in.wait_for(3)
    assert stand_in.received == expected
    rows = await stored(engine)
    assert [row["id"] for row in rows] == sent.ids
    assert [row["name"] for row in rows] == [e["name"] for e in events]
    assert [json.loads(row["payload"]) for row in rows] == expected
    assert stand_in.received[1]["id"] == "order-42" != sent.ids[1]
    if client != "python":
        assert sent.ids == event_ids(sent.seeds[0], 3, 0), "Inngest's ids from the SDK's seed"
    # Inngest files the events under the ids the SDK was answered, as if it had sent them.
    assert stand_in.internal_ids == sent.ids
    assert [row["inngest_id"] for row in rows] == sent.ids


async def test_one_event(
    client: str, service_url: str, stand_in: FakeInngest, engine: AsyncEngine
) -> None:
    event = {"name": "app/one", "data": {"n": 1}, "ts": NOW}
    sent = await send(client, service_url, APP_KEY, event)  # an object, not an array
    assert sent.error is None and sent.ids is not None and len(sent.ids) == 1
    await stand_in.wait_for(1)
    assert stand_in.received == with_ids(sdk_body(sent, client, [event]), sent.ids)
    assert stand_in.internal_ids == sent.ids


async def assert_refused(
    client: str, sent: Sent, text: str, engine: AsyncEngine, *, attempts: int
) -> None:
    """The SDK raised with the service's ``text`` and nothing was stored."""
    assert sent.ids is None and sent.error is not None and text in sent.error, sent.error
    if client != "python":
        # The JS SDK sends a refused batch again: every attempt was refused the same way.
        assert len(sent.attempts) == attempts and len(set(sent.seeds)) == 1
    assert await stored(engine) == []


async def test_a_wrong_key_is_refused(client: str, service_url: str, engine: AsyncEngine) -> None:
    sent = await send(client, service_url, "not-the-key", [{"name": "app/x", "ts": NOW}])
    await assert_refused(client, sent, "Event key not found", engine, attempts=5)
    assert {a["status"] for a in sent.attempts} <= {401}


@pytest.mark.parametrize(
    ("events", "error"),
    [
        (
            [{"name": "app/ok", "ts": NOW}, {"name": "", "ts": NOW}],
            "event 2: event name is empty",
        ),
        (
            [{"name": "app/ok", "ts": NOW}, {"name": "inngest/function.failed", "ts": NOW}],
            "event 2: event name is reserved for internal use: inngest/function.failed",
        ),
        (
            [{"name": "app/big", "data": {"x": "y" * MAX_EVENT_BYTES}, "ts": NOW}],
            f"event 1: Event is over the max size: Max {MAX_EVENT_BYTES} bytes",
        ),
        (
            [{"name": "app/old", "ts": 315_532_799_999}],
            "event 1: timestamp is before Jan 1, 1980",
        ),
    ],
    ids=["invalid-batch", "reserved-name", "oversized", "old-ts"],
)
async def test_a_refused_batch_stores_nothing(
    client: str,
    service_url: str,
    engine: AsyncEngine,
    events: list[dict[str, Any]],
    error: str,
) -> None:
    sent = await send(client, service_url, APP_KEY, events)
    await assert_refused(client, sent, error, engine, attempts=5)


async def test_a_retry_after_a_lost_answer_stores_nothing_new(
    client: str, service_url: str, stand_in: FakeInngest, engine: AsyncEngine
) -> None:
    events = [{"name": "app/retried", "data": {"n": n}, "ts": NOW} for n in range(3)]
    async with lossy_proxy(service_url, lose=1) as proxy:
        sent = await send(client, proxy.origin, APP_KEY, events)
    assert sent.error is None and sent.ids is not None
    assert proxy.forwarded == 2, "the SDK sent the batch again after the lost answer"
    [lost] = proxy.lost
    assert json.loads(lost) == {"ids": sent.ids, "status": 200}, "the same ids both times"
    if client != "python":
        assert len(set(sent.seeds)) == 1 and len(sent.attempts) == 2
    rows = await stored(engine)
    assert [row["id"] for row in rows] == sent.ids
    await stand_in.wait_for(3)
    await asyncio.sleep(0.2)  # time for a duplicate to arrive, if there were one
    assert [event["id"] for event in stand_in.received] == sent.ids
    assert stand_in.internal_ids == sent.ids


async def test_an_unavailable_database_is_the_sdks_error_and_stores_nothing(
    client: str, backend: str, service_url: str, engine: AsyncEngine, database_url: str
) -> None:
    events = [{"name": "app/unstored", "ts": NOW}]
    async with unwritable(backend, database_url):
        sent = await send(client, service_url, APP_KEY, events)
    assert sent.ids is None and sent.error is not None and "retry later" in sent.error
    if client != "python":
        assert {a["status"] for a in sent.attempts} == {503} and len(sent.attempts) == 5
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(outbox_events)) == 0


async def test_the_environment_reaches_the_stand_in(
    client: str, service_url: str, stand_in: FakeInngest, engine: AsyncEngine
) -> None:
    sent = await send(client, service_url, APP_KEY, [{"name": "app/branch", "ts": NOW}], "br-7")
    assert sent.error is None
    await stand_in.wait_for(1)
    [request] = stand_in.requests
    assert request.headers["x-inngest-env"] == "br-7"
    assert [row["env"] for row in await stored(engine)] == ["br-7"]
