"""/metrics of the API and of the relay, /health and /ready, on each backend.

The expositions are parsed with prometheus_client's own parser and checked after a known
sequence of requests and deliveries.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.events import payload
from service.events.ids import now_ms
from service.http.app import create_app
from service.metrics import Metrics
from service.store import deliveries, outbox_stats
from tests.conftest import POSTGRESQL_ONLY, SQLITE_ONLY, admin_execute, bearer, make_settings
from tests.fake_inngest import running_fake
from tests.integration.test_api import assert_problem
from tests.metric_samples import Samples, parse, value
from tests.relay_harness import relay_settings, running_relay, settled
from tests.sql_statements import recorded_statements


async def scrape(client: TestClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return parse(await response.text())


async def test_counters_gauges_and_histograms_after_a_known_sequence(
    client: TestClient,
    engine: AsyncEngine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _ in range(3):
        assert (await client.post("/api", headers=bearer())).status == 200
    assert (await client.post("/api")).status == 401
    assert (await client.get("/no/such/route/42")).status == 404

    api = await scrape(client)
    assert value(api, "outbox_events_accepted_total") == 3
    assert value(api, "http_requests_total", route="/api", status="200") == 3
    assert value(api, "http_requests_total", route="/api", status="401") == 1
    # Routes are labelled by their template: a raw path never becomes a label value.
    routes = {dict(labels).get("route") for name, labels in api if name == "http_requests_total"}
    assert not any(route and "no/such" in route for route in routes)
    assert value(api, "outbox_pending_rows") == 3
    assert value(api, "outbox_dead_rows") == 0
    assert 0 <= value(api, "outbox_oldest_pending_age_seconds") < 60

    async with engine.begin() as conn:  # a fourth event that Inngest refuses for good
        await deliveries.add(conn, [payload.new_event({"poison": True}, None, now_ms())])
    relay_metrics = Metrics()
    async with running_fake(poison_marker="poison") as fake:
        async with running_relay(
            relay_settings(settings, fake.origin), engine, relay_metrics
        ) as run:
            await run.until(lambda: settled(engine))
        # The API's three events are one run of ids, the fourth (added alone) one of its own:
        # two requests, three events accepted, the fourth refused.
        assert len(fake.requests) == 2
    await relay_metrics.refresh_outbox_gauges(engine)
    relay = parse(relay_metrics.exposition().decode())
    assert value(relay, "outbox_events_delivered_total") == 3
    assert value(relay, "outbox_events_buried_total") == 1
    assert value(relay, "outbox_events_accepted_total") == 0
    assert value(relay, "relay_delivery_attempts_total", outcome="ok") == 1
    assert value(relay, "relay_delivery_attempts_total", outcome="partial") == 1
    attempts = [v for (name, _), v in relay.items() if name == "relay_delivery_attempts_total"]
    assert sum(attempts) == 2
    assert value(relay, "relay_batch_send_seconds_count") == 2
    assert value(relay, "outbox_delivery_delay_seconds_count") == 3
    assert value(relay, "outbox_delivery_delay_seconds_bucket", le="+Inf") == 3
    assert value(relay, "outbox_pending_rows") == 0
    assert value(relay, "outbox_dead_rows") == 1
    assert value(relay, "outbox_oldest_pending_age_seconds") == 0

    # The API read its gauges moments ago: this scrape reuses them (at most every 5 s)...
    cached = await scrape(client)
    assert value(cached, "outbox_pending_rows") == 3
    assert value(cached, "http_requests_total", route="/metrics", status="200") == 1
    # ...and once they are old enough, reads them again.
    monkeypatch.setattr("service.metrics.GAUGE_MAX_AGE", 0.0)
    fresh = await scrape(client)
    assert value(fresh, "outbox_pending_rows") == 0
    assert value(fresh, "outbox_dead_rows") == 1


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[tuple[str, object]]]:
    """Every SQL statement the engine runs while the test goes on."""
    with recorded_statements(engine) as seen:
        yield seen


@SQLITE_ONLY
async def test_outbox_queries_read_through_indexes(
    engine: AsyncEngine, backend: str, statements: list[tuple[str, object]]
) -> None:
    """SQLite's plans are stable on an empty table: the gauges search an index or scan a
    partial one (which holds only the rows counted), and every statement of ``stats`` reads an
    index, never the table itself."""
    await outbox_stats.gauge_snapshot(engine)
    gauges = sum("outbox_events" in sql for sql, _params in statements)
    await outbox_stats.stats(engine)
    ran = list(statements)
    plans = []
    async with engine.connect() as conn:
        for sql, params in ran:
            if "outbox_events" not in sql:
                continue
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)  # type: ignore[arg-type]
            plans.append(" | ".join(str(row[3]) for row in rows))
    assert gauges == 3 and len(plans) > gauges
    print("\n".join(plans))
    partial = ("ix_outbox_events_due", "ix_outbox_events_pending_created", "ix_outbox_events_dead")
    for plan in plans[:gauges]:
        searched = "SEARCH outbox_events USING" in plan and "SCAN outbox_events" not in plan
        assert searched or any(f"SCAN outbox_events USING INDEX {i}" in plan for i in partial), plan
    for plan in plans:
        assert re.search(r"(SCAN|SEARCH) outbox_events USING (COVERING )?INDEX", plan), plan
        assert not re.search(r"SCAN outbox_events( |$)(?!USING)", plan), plan


async def test_ready_is_503_with_the_reason_when_the_schema_is_behind(
    client: TestClient, engine: AsyncEngine
) -> None:
    assert (await client.get("/ready")).status == 200
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    body = await assert_problem(await client.get("/ready"), 503)
    assert "the database's schema is at revision 0000, this code needs" in str(body["detail"])
    assert "service db upgrade" in str(body["detail"])
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM alembic_version"))
    body = await assert_problem(await client.get("/ready"), 503)
    assert "the database has no service schema" in str(body["detail"])
    assert (await client.get("/health")).status == 200  # alive, just not ready


@SQLITE_ONLY
async def test_ready_is_503_when_the_sqlite_file_is_not_a_database(
    aiohttp_client, backend: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database file\n" * 200)
    client = await aiohttp_client(create_app(make_settings(f"sqlite+aiosqlite:///{path}")))
    body = await assert_problem(await client.get("/ready"), 503)
    assert body["detail"] == "database unreachable"
    await assert_problem(await client.post("/api", headers=bearer()), 503)


@SQLITE_ONLY
async def test_ready_and_writes_are_503_once_the_sqlite_file_is_deleted(
    client: TestClient, database_url: str, backend: str
) -> None:
    assert (await client.get("/ready")).status == 200  # the pool holds a connection
    assert (await client.post("/api", headers=bearer())).status == 200  # so does the writer
    path = make_url(database_url).database or ""
    for suffix in ("", "-wal", "-shm"):
        os.remove(f"{path}{suffix}")
    answers = [
        (await client.get("/ready")).status,
        (await client.post("/api", headers=bearer())).status,
    ]
    assert answers == [503, 503]


@POSTGRESQL_ONLY
async def test_ready_and_writes_are_503_when_the_postgres_database_is_dropped(
    client: TestClient, database_url: str, backend: str
) -> None:
    assert (await client.post("/api", headers=bearer())).status == 200  # pools are warm
    assert (await client.get("/ready")).status == 200
    await admin_execute(f'DROP DATABASE "{make_url(database_url).database}" WITH (FORCE)')
    body = await assert_problem(await client.get("/ready"), 503)
    assert body["detail"] == "database unreachable"
    for _ in range(2):  # the first finds its connection gone, the next cannot connect
        await assert_problem(await client.post("/api", headers=bearer()), 503)
    metrics = await client.get("/metrics")  # still answers, with the counters
    assert metrics.status == 200
