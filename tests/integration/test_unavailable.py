"""A database that cannot take the write gives 503, never 200, and recovers afterwards."""

from __future__ import annotations

import asyncio
import sqlite3

from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRESQL_ONLY, SQLITE_ONLY, admin_execute, bearer
from tests.integration.test_api import assert_problem


@SQLITE_ONLY
async def test_locked_sqlite_gives_503_then_recovers(
    client: TestClient, database_url: str, backend: str
) -> None:
    path = make_url(database_url).database
    assert path
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock past the 1 s busy timeout
    try:
        response = await client.post("/api", headers=bearer())
        body = await assert_problem(response, 503)
        assert response.headers["Retry-After"] == "1"
        assert "retry later" in str(body["detail"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (await client.post("/api", headers=bearer())).status == 200


@POSTGRESQL_ONLY
async def test_closed_postgres_database_gives_503_then_recovers(
    client: TestClient, database_url: str, backend: str
) -> None:
    name = make_url(database_url).database
    assert (await client.post("/api", headers=bearer())).status == 200  # the pool is warm
    await admin_execute(
        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    try:
        for _ in range(2):  # the first drops the dead pooled connection, the next cannot connect
            await assert_problem(await client.post("/api", headers=bearer()), 503)
        await assert_problem(await client.get("/ready"), 503)
    finally:
        await admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    await asyncio.sleep(0)
    assert (await client.post("/api", headers=bearer())).status == 200
