"""The Next.js app's database sessions in the benches: an app's database beside the service's on
the PostgreSQL server, with Prisma's tables (the default adapter's) holding one signed-in user,
whose cookie the ingest bench sends; and what a lookup costs the service per request: one the
database answers, and one the 5 s memory answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.databases import POSTGRES_ADMIN_URL, admin
from bench.output import fmt, print_table
from bench.stats import median
from tests.nextauth_ddl import PRISMA_POSTGRES

COOKIE_NAME = "next-auth.session-token"


@dataclass(frozen=True)
class AppDatabase:
    """The app's database (``NEXTAUTH_DATABASE_URL``) and the token of its one session."""

    url: str
    token: str

    @property
    def cookie(self) -> str:
        """The ``Cookie`` header a browser of the app would send."""
        return f"{COOKIE_NAME}={self.token}"


@contextlib.asynccontextmanager
async def app_database() -> AsyncIterator[AppDatabase]:
    """A database of Prisma's tables with a user signed in for a day; dropped afterwards."""
    import asyncpg

    name = f"bench_app_{uuid.uuid4().hex[:10]}"
    url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(url)
        try:
            for statement in PRISMA_POSTGRES:
                await conn.execute(statement)
            user, token = f"c{uuid.uuid4().hex[:24]}", str(uuid.uuid4())
            await conn.execute(
                'INSERT INTO "User" (id, name, email, image) VALUES ($1, $2, $3, $4)',
                user,
                "Ada Lovelace",
                "ada@example.com",
                "https://example.com/ada.png",
            )
            expires = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)  # UTC wall time
            await conn.execute(
                'INSERT INTO "Session" ("sessionToken", "userId", expires) VALUES ($1, $2, $3)',
                token,
                user,
                expires,
            )
        finally:
            await conn.close()
        yield AppDatabase(url, token)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _per_lookup(sessions: Any, token: str, repeats: int, number: int) -> list[float]:
    """Microseconds per ``sessions.user(token)``, for each of ``repeats`` runs of ``number``."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            await sessions.user(token)
        runs.append((time.perf_counter() - started) / number * 1e6)
    return runs


async def lookup_cost(
    database: AppDatabase, repeats: int = 7, number: int = 2000
) -> list[dict[str, Any]]:
    """What the service's lookup costs per request, medians of ``repeats`` runs: asked of the
    database every time (the memory off), and answered by the memory (as a browser's repeated
    requests are within 5 s). Printed as a table."""
    from service.config import Settings
    from service.http.app_sessions.lookup import DatabaseSessions, create_app_engine
    from service.http.app_sessions.presets import layout_of

    config = Settings.from_env({"NEXTAUTH_DATABASE_URL": database.url}).nextauth_database
    engine = create_app_engine(config, pool_size=1)
    rows = []
    try:
        for label, remember_for in (("asked of PostgreSQL", 0.0), ("remembered (5 s)", 5.0)):
            sessions = DatabaseSessions(engine, layout_of(config), time.time, remember_for)
            await sessions.user(database.token)  # the connection made, the statement cached
            runs = await _per_lookup(sessions, database.token, repeats, number)
            rows.append(
                {
                    "lookup": label,
                    "us_median": round(median(runs), 1),
                    "us_best": round(min(runs), 1),
                }
            )
    finally:
        await engine.dispose()
    print_table(
        f"database session lookup per request, µs (Prisma's tables on PostgreSQL; median of "
        f"{repeats} x {number:,})",
        ["lookup", "median", "best"],
        [[r["lookup"], fmt(r["us_median"]), fmt(r["us_best"])] for r in rows],
    )
    return rows


if __name__ == "__main__":  # the lookup's cost alone: python -m bench.app_sessions

    async def _alone() -> None:
        async with app_database() as database:
            await lookup_cost(database)

    asyncio.run(_alone())
