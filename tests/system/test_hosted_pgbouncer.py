"""The service as deployed on a hosted PostgreSQL: TLS everywhere, PgBouncer in transaction mode
in front of the cluster (``pgbouncer=true``), the direct URL for what needs a session, and
Prisma's URL parameters. Real processes, a real PgBouncer, a real TLS cluster."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import bearer
from tests.fake_inngest import running_fake
from tests.hosted_servers import APP_USER, Certificates, Cluster, PooledCluster
from tests.processes import free_port, service_env, spawn, stop, wait_http
from tests.relay_harness import EVENT_KEY

pytestmark = pytest.mark.slow

EVENTS = 2000
CLIENTS = 20


def _env(url: str, origin: str, **extra: str) -> dict[str, str]:
    return service_env(
        url,
        INNGEST_EVENT_API_BASE_URL=origin,
        INNGEST_EVENT_KEY=EVENT_KEY,
        INNGEST_REQUEST_TIMEOUT="10s",
        RELAY_LEASE="60s",
        RELAY_METRICS_PORT="0",
        **extra,
    )


async def _fresh_urls(pgbouncer: PooledCluster, certificates: Certificates) -> tuple[str, str]:
    """A new database's URLs, pooled and direct, each verifying the certificate to its host."""
    database = await pgbouncer.cluster.fresh_database()
    tls = {"sslmode": "verify-full", "sslrootcert": certificates.ca}
    pooled = pgbouncer.url(database=database, pgbouncer="true", **tls)
    return pooled, pgbouncer.cluster.url(database=database, **tls)


async def _upgrade(env: dict[str, str], log: Path) -> None:
    await asyncio.to_thread(_upgrade_now, env, log)


def _upgrade_now(env: dict[str, str], log: Path) -> None:
    assert spawn(["db", "upgrade"], env, log).wait(120) == 0, log.read_text()


async def _post_many(port: int, count: int, clients: int) -> list[str]:
    """``count`` posts from ``clients`` concurrent clients; the ids they were answered."""
    ids: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def client(share: int) -> None:
            for _ in range(share):
                async with session.post(
                    f"http://127.0.0.1:{port}/api", headers=bearer()
                ) as response:
                    assert response.status == 200, await response.text()
                    ids.append((await response.json())["id"])

        await asyncio.gather(*(client(count // clients) for _ in range(clients)))
    return ids


def _log_lines(path: Path) -> list[dict[str, object]]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _assert_quiet(*logs: Path) -> None:
    """No warning or error in the service's logs, and no word of prepared statements."""
    for log in logs:
        text = log.read_text()
        assert "prepared statement" not in text, text[-3000:]
        loud = [line for line in _log_lines(log) if line["level"] not in ("DEBUG", "INFO")]
        assert loud == [], loud


async def test_behind_pgbouncer_every_event_is_delivered_once_and_relays_are_woken(
    pgbouncer: PooledCluster, certificates: Certificates, tmp_path: Path
) -> None:
    pooled, direct = await _fresh_urls(pgbouncer, certificates)
    api_port = free_port()
    async with running_fake(event_key=EVENT_KEY) as fake:
        # Polling once an hour: within the test, only NOTIFY through the direct URL wakes.
        env = _env(pooled, fake.origin, DATABASE_DIRECT_URL=direct, RELAY_POLL_INTERVAL="1h")
        await _upgrade(env, tmp_path / "upgrade.log")
        api = spawn(["serve", "--no-relay", "--port", str(api_port)], env, tmp_path / "api.log")
        relays = [spawn(["relay"], env, tmp_path / f"relay{n}.log") for n in range(2)]
        try:
            await wait_http(f"http://127.0.0.1:{api_port}/health", api)
            ids = await _post_many(api_port, EVENTS, CLIENTS)
            await fake.wait_for(EVENTS, timeout=120)
        finally:
            assert await stop(api) == 0
            for relay in relays:
                assert await stop(relay) == 0
        counts = Counter(fake.received_ids)
    assert len(ids) == EVENTS
    assert max(counts.values()) == 1, counts.most_common(3)
    assert set(counts) == set(ids), (len(counts), len(set(ids)), len(set(ids) - set(counts)))
    _assert_quiet(tmp_path / "api.log", *(tmp_path / f"relay{n}.log" for n in range(2)))
    assert "prepared statement" not in pgbouncer.log.read_text()
    assert "prepared statement" not in pgbouncer.cluster.log.read_text()


async def test_behind_pgbouncer_without_a_direct_url_relays_poll_and_say_so_once(
    pgbouncer: PooledCluster, certificates: Certificates, tmp_path: Path
) -> None:
    pooled, direct = await _fresh_urls(pgbouncer, certificates)
    port = free_port()
    async with running_fake(event_key=EVENT_KEY) as fake:
        env = _env(
            pooled,
            fake.origin,
            DATABASE_DIRECT_URL=direct,
        )
        await _upgrade(env, tmp_path / "upgrade.log")
        del env["DATABASE_DIRECT_URL"]
        env.update(RELAY_POLL_INTERVAL="200ms", RELAY_CONCURRENCY="3")
        server = spawn(["serve", "--port", str(port)], env, tmp_path / "serve.log")
        try:
            await wait_http(f"http://127.0.0.1:{port}/health", server)
            ids = await _post_many(port, 100, 5)
            await fake.wait_for(100, timeout=60)
        finally:
            assert await stop(server) == 0
    assert set(fake.received_ids) == set(ids)
    lines = _log_lines(tmp_path / "serve.log")
    said = [line for line in lines if line.get("action") == "relay.polling_only"]
    assert len(said) == 1, said  # once, though three relay workers asked
    assert "DATABASE_DIRECT_URL" in str(said[0]) and "(0.2s)" in str(said[0])


async def test_a_prisma_url_puts_the_tables_in_its_schema_and_keeps_to_its_limit(
    tls_cluster: Cluster, tmp_path: Path
) -> None:
    database = await tls_cluster.fresh_database()
    url = tls_cluster.url(
        database=database,
        sslmode="require",
        schema="app",
        connection_limit="5",
        pool_timeout="10",
        application_name="settings-sync",
    )
    port = free_port()
    peak = 0
    async with running_fake(event_key=EVENT_KEY) as fake:
        env = _env(url, fake.origin)
        await _upgrade(env, tmp_path / "upgrade.log")
        server = spawn(["serve", "--port", str(port)], env, tmp_path / "serve.log")
        try:
            await wait_http(f"http://127.0.0.1:{port}/health", server)
            load = asyncio.create_task(_post_many(port, 600, 30))
            while not load.done():
                peak = max(peak, await _connections_named(tls_cluster, "settings-sync"))
                await asyncio.sleep(0.02)
            ids = await load
            await fake.wait_for(600, timeout=60)
        finally:
            assert await stop(server) == 0
    assert set(fake.received_ids) == set(ids)
    assert 1 <= peak <= 5, peak
    tables = await tls_cluster.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app'",
        database=database,
    )
    assert "outbox_events" in tables, tables
    public = await tls_cluster.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        database=database,
    )
    assert public == [0]
    _assert_quiet(tmp_path / "serve.log")


async def _connections_named(cluster: Cluster, name: str) -> int:
    found = await cluster.execute(
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'"
        f" AND usename = '{APP_USER}'",
        database="postgres",
    )
    return int(str(found[0]))
