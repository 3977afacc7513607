"""Events reach the stand-in Inngest under the ids the service answered, with the caller's
trace context: ``POST /e/{key}``, ``POST /api``, ``PUT /api/settings``, ``send_event`` and
replays, on each backend, through the relay's splits, refusals and retries.

The stand-in makes its ids as Inngest's server does (from the request's seed and each event's
position, with a ULID library of its own), so an id matches only if the relay sent the seed
and the positions that give it."""

from __future__ import annotations

import asyncio
import json
import math
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service import send_event
from service.cli.main import main
from service.config import EventApiSettings, Settings
from service.events.inngest_ids import MAX_MS, SEED_HEADER, ulid, ulid_parts
from service.http.app import create_app
from service.store.tables import outbox_events
from tests.conftest import POSTGRESQL_ONLY, bearer
from tests.fake_inngest import Answer, FakeInngest, internal_id, running_fake
from tests.relay_harness import relay_settings, running_relay, seed, settled

KEY = "app-event-key-0123456789"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.replace(event_api=EventApiSettings(keys=(KEY,), max_body_bytes=8 * 2**20))


@pytest.fixture
async def api(aiohttp_client, app_settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(app_settings))


async def send(api: TestClient, events: Any, **headers: str) -> list[str]:
    response = await api.post(f"/e/{KEY}", data=json.dumps(events), headers=headers)
    assert response.status == 200, await response.text()
    ids: list[str] = json.loads(await response.text())["ids"]
    return ids


async def deliver(settings: Settings, engine: AsyncEngine, fake: FakeInngest, **relay: Any) -> None:
    async with running_relay(relay_settings(settings, fake.origin, **relay), engine) as run:
        await run.until(lambda: settled(engine))


async def stored(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))
        return [dict(row._mapping) for row in result]


async def looked_up(fake: FakeInngest, event_id: str) -> dict[str, Any]:
    """The event as Inngest's REST API finds it by the id the service answered."""
    async with fake_client(fake) as http, http.get(f"/v1/events/{event_id}") as response:
        assert response.status == 200, event_id
        found: dict[str, Any] = (await response.json())["data"]
        return found


async def outbox_command(database_url: str, *args: str) -> list[dict[str, Any]]:
    """``service outbox ARGS`` (with ``--json``): its lines."""
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["outbox", *args], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def fake_client(fake: FakeInngest) -> Any:
    import aiohttp

    return aiohttp.ClientSession(base_url=fake.origin)


@pytest.mark.parametrize("count", [1, 3, 100, 5000])
async def test_the_event_apis_ids_are_inngests(
    api: TestClient, app_settings: Settings, engine: AsyncEngine, count: int
) -> None:
    events = [{"name": "app/counted", "data": {"n": n}} for n in range(count)]
    ids = await send(api, events if count > 1 else events[0])
    async with running_fake() as fake:
        await deliver(app_settings, engine, fake, batch_size=500)
        assert fake.internal_ids == ids
        assert [event["id"] for event in fake.received] == ids
        # One run: as few requests as the batch size allows.
        assert len(fake.requests) == math.ceil(count / 500)
        found = await looked_up(fake, ids[-1])
        assert found["data"] == {"n": count - 1} and found["internal_id"] == ids[-1]
    assert [row["inngest_id"] for row in await stored(engine)] == ids


async def test_runs_split_by_count_and_bytes_keep_their_ids(
    api: TestClient, app_settings: Settings, engine: AsyncEngine
) -> None:
    first = await send(api, [{"name": "app/a", "data": {"n": n}} for n in range(40)])
    second = await send(api, [{"name": "app/b", "data": {"pad": "x" * 300}} for _ in range(30)])
    async with running_fake() as fake:
        await deliver(app_settings, engine, fake, batch_size=7, batch_max_bytes=2000)
        assert sorted(fake.internal_ids) == sorted(first + second)
        seeds = [record.headers[SEED_HEADER] for record in fake.requests]
        assert len(set(seeds)) == len(seeds), "each part of a run has a seed of its own"
        assert all(len(record.events) <= 7 for record in fake.requests)
        assert all(len(record.body) <= 2000 for record in fake.requests)


async def test_a_refused_event_and_failed_requests_change_no_id(
    api: TestClient, app_settings: Settings, engine: AsyncEngine
) -> None:
    ids = await send(api, [{"name": "app/x", "data": {"poison": n == 4}} for n in range(10)])
    async with running_fake(poison_marker='"poison": true') as fake:
        fake.enqueue(Answer.server_error(), Answer.connection_reset(), Answer.rate_limited("0"))
        await deliver(app_settings, engine, fake)
        # Every request, answered or not, would have given each of its events the event's id.
        for record in fake.requests:
            seed = record.headers[SEED_HEADER]
            given = [internal_id(seed, n) for n in range(1, len(record.events) + 1)]
            assert given == [event["id"] for event in record.events]
        assert len(fake.requests) > 4
        # The first four accepted, the fifth refused, the rest sent again after it.
        assert fake.internal_ids == ids[:4] + ids[5:]
    statuses = [row["status"] for row in await stored(engine)]
    assert statuses == ["delivered"] * 4 + ["dead"] + ["delivered"] * 5


async def test_posts_to_api_are_filed_under_the_ids_they_were_answered(
    client: TestClient, settings: Settings, engine: AsyncEngine
) -> None:
    async def sync() -> str:
        response = await client.post("/api", headers=bearer())
        assert response.status == 200
        answer: str = (await response.json())["id"]
        return answer

    ids = await asyncio.gather(*(sync() for _ in range(40)))
    response = await client.put("/api/settings", json={"theme": "dark"}, headers=bearer())
    assert response.status == 200
    ids.append((await response.json())["id"])
    async with running_fake() as fake:
        await deliver(settings, engine, fake)
        assert sorted(fake.internal_ids) == sorted(ids)
        # Concurrent requests shared group commits, and a group commit's events one request.
        assert len(fake.requests) < len(ids)
        assert (await looked_up(fake, ids[-1]))["data"] == {"theme": "dark"}


async def test_send_event_answers_inngests_id_and_keeps_the_apps_own(
    settings: Settings, engine: AsyncEngine, backend: str
) -> None:
    async with engine.begin() as conn:
        generated = [await send_event(conn, "app/tx", {"n": n}) for n in range(5)]
        own = await send_event(conn, "app/tx", {"n": 5}, id="order-5")
    assert own == "order-5"
    async with running_fake() as fake:
        await deliver(settings, engine, fake)
        by_internal = dict(zip(fake.internal_ids, fake.received, strict=True))
        if backend == "postgresql":
            # The database's run of the second: one request (two if a second began meanwhile).
            assert len(fake.requests) <= 2
    rows = {row["id"]: row for row in await stored(engine)}  # taken in from PostgreSQL's intake
    for event_id in generated:
        assert by_internal[event_id]["id"] == event_id  # Inngest's id, and the event's
    own_internal = rows["order-5"]["inngest_id"]
    assert by_internal[own_internal]["id"] == "order-5"  # the app's idempotency key, unchanged
    assert own_internal not in generated


async def test_replays_send_new_ids_or_the_same_on_request(
    settings: Settings, engine: AsyncEngine, database_url: str
) -> None:
    [first, second] = await seed(engine, 2)
    async with running_fake() as fake:
        await deliver(settings, engine, fake)
        actions = []
        for args in (["--id", first], ["--id", second, "--same-id"]):
            [line] = await outbox_command(database_url, "replay", "--json", *args)
            actions.append(line["action"])
        assert actions == ["resent", "requeued"]
        await deliver(settings, engine, fake)
    rows = await stored(engine)
    copy = next(row for row in rows if row["replay_of"] == first)
    assert copy["inngest_id"] == copy["id"] != first
    # Delivered again under its own ids: Inngest takes it for the event it had.
    assert fake.internal_ids[:2] == [first, second]
    assert sorted(fake.internal_ids[2:]) == sorted([copy["id"], second])


async def test_rows_older_than_inngest_ids_go_without_a_seed(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed(engine, 5)
    async with engine.begin() as conn:
        await conn.execute(update(outbox_events).values(inngest_id=None))
    async with running_fake() as fake:
        await deliver(settings, engine, fake)
        [request] = fake.requests
        assert SEED_HEADER not in request.headers
        assert fake.received_ids == ids and not set(fake.internal_ids) & set(ids)


async def test_the_callers_trace_context_goes_along(
    api: TestClient, client: TestClient, app_settings: Settings, engine: AsyncEngine
) -> None:
    traced = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    other = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
    await send(api, [{"name": "app/t1"}, {"name": "app/t2"}], **traced)
    await send(api, [{"name": "app/t3"}], **other)
    await send(api, [{"name": "app/none"}])
    # Ignored as the W3C rules say, never refused: a bad traceparent takes its tracestate along.
    await send(api, [{"name": "app/bad"}], traceparent="00-" + "0" * 32 + "-b7ad6b7169203331-01")
    await send(api, [{"name": "app/v9"}], traceparent=TRACEPARENT.replace("00-", "09-") + "-x")
    response = await client.post("/api", headers={**bearer(), **traced})
    assert response.status == 200
    async with running_fake() as fake:
        await deliver(app_settings, engine, fake)
        seen = {
            event["name"]: (
                len(record.events),
                record.headers.get("traceparent"),
                record.headers.get("tracestate"),
            )
            for record in fake.requests
            for event in record.events
        }
    # A request carries one trace context (the sends are of one run of the writer's ids while
    # they come within a second of each other).
    assert seen["app/t1"] == seen["app/t2"] == (2, TRACEPARENT, TRACESTATE)
    assert seen["app/t3"] == (1, other["traceparent"], None)
    assert seen["app/none"][1:] == seen["app/bad"][1:] == (None, None)
    assert seen["app/v9"] == (1, TRACEPARENT, None)  # read as version 00
    assert seen["openapi/app.sync"] == (1, TRACEPARENT, TRACESTATE)


async def test_an_operator_sees_the_inngest_id_and_the_trace(
    api: TestClient, engine: AsyncEngine, database_url: str
) -> None:
    [event_id] = await send(api, [{"name": "app/shown"}], traceparent=TRACEPARENT)
    [shown] = await outbox_command(database_url, "show", event_id, "--json")
    assert (shown["id"], shown["inngest_id"]) == (event_id, event_id)
    assert (shown["traceparent"], shown["tracestate"]) == (TRACEPARENT, None)


@POSTGRESQL_ONLY
async def test_the_databases_ids_are_spelled_as_the_services(engine: AsyncEngine) -> None:
    """``send_event``'s ULIDs, made in SQL, byte for byte those of the Python code."""
    cases = [(0, 0), (1, 1), (MAX_MS, 2**32 - 1), (1_796_157_941_000, 2**32), (2**40, 2**33 + 7)]
    cases += [
        (int.from_bytes(os.urandom(6), "big"), int.from_bytes(os.urandom(5), "big"))
        for _ in range(200)
    ]
    async with engine.connect() as conn:
        where = await conn.scalar(
            text(
                "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE p.proname = 'inngest_id'"
            )
        )
        function = f'"{where}".inngest_id'
        head_id = await conn.scalar(text(f"SELECT {function}(0, 0)"))
        made = (
            (
                await conn.execute(
                    text(
                        f"SELECT {function}(ms, n) FROM unnest(CAST(:ms AS bigint[]),"
                        " CAST(:n AS bigint[])) AS c(ms, n)"
                    ),
                    {"ms": [ms for ms, _ in cases], "n": [n for _, n in cases]},
                )
            )
            .scalars()
            .all()
        )
    parts = ulid_parts(head_id)
    assert parts is not None
    head = (parts[1] >> 32).to_bytes(6, "big")
    assert made == [ulid(ms, head + (n % 2**32).to_bytes(4, "big")) for ms, n in cases]
