"""The databases of a bench: which backends can run here, and a fresh scratch database per run
(a SQLite file, or a PostgreSQL database next to ``BENCH_POSTGRES_URL``'s) migrated by
``service db upgrade``, queried through the service's own engine and removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.output import warn
from bench.processes import PYTHON, BenchError, run_command
from bench.servers import service_env

POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


async def postgres_reason() -> str | None:
    """None when PostgreSQL answers at POSTGRES_ADMIN_URL, else why not."""
    import asyncpg

    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}"
    await conn.close()
    return None


async def backends(requested: Sequence[str]) -> list[str]:
    """The requested backends that can run here (PostgreSQL is skipped with a warning)."""
    chosen = [b for b in requested if b in BACKENDS]
    if "postgresql" in chosen:
        reason = await postgres_reason()
        if reason:
            warn(f"skipping PostgreSQL: {reason}")
            chosen.remove("postgresql")
    return chosen


async def admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class Database:
    """A scratch database: ``url`` is what DATABASE_URL gets; queries use the service's engine."""

    kind: str
    url: str
    _engine: Any = field(default=None, repr=False)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from service.config import Settings, normalise_database_url
            from service.store.engine import create_engine

            settings = Settings(database_url=normalise_database_url(self.url), db_pool_size=2)
            self._engine = create_engine(settings)
        return self._engine

    async def scalar(self, sql: str, **params: Any) -> Any:
        """One value, read as the service reads (on SQLite: without taking the write lock)."""
        from sqlalchemy import text

        from service.store.engine import reading

        async with reading(self.engine) as conn:
            return await conn.scalar(text(sql), params)

    async def execute(self, sql: str, **params: Any) -> None:
        """A statement in a write transaction of its own."""
        from sqlalchemy import text

        from service.store.engine import transaction

        async with transaction(self.engine) as conn:
            await conn.execute(text(sql), params)

    async def count(self, status: str | None = None) -> int:
        """Rows of the outbox, all or of one status."""
        if status is None:
            return int(await self.scalar("SELECT count(*) FROM outbox_events"))
        sql = "SELECT count(*) FROM outbox_events WHERE status = :status"
        return int(await self.scalar(sql, status=status))

    async def any_pending(self) -> bool:
        """Whether any outbox row is pending (stops at the first one found)."""
        sql = "SELECT 1 FROM outbox_events WHERE status = 'pending' LIMIT 1"
        return await self.scalar(sql) is not None

    async def status_counts(self) -> dict[str, int]:
        from sqlalchemy import text

        from service.store.engine import reading

        sql = "SELECT status, count(*) FROM outbox_events GROUP BY status"
        async with reading(self.engine) as conn:
            rows = (await conn.execute(text(sql))).all()
        return {str(status): int(n) for status, n in rows}

    async def settled_count(self, timeout: float = 15.0) -> int:
        """The row count once it stops changing (commits of requests still in flight)."""
        last, stable_since = await self.count(), time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - stable_since < 1.0:
            await asyncio.sleep(0.2)
            now = await self.count()
            if now != last:
                last, stable_since = now, time.monotonic()
        return last

    async def settle(self) -> None:
        """What PostgreSQL's autovacuum does soon after a bulk load (the visibility map, the
        planner's statistics), done now: a query timed right after a fill would pay for it
        (``service outbox stats`` on 100,000 fresh rows: ~1 s of queries, ~0.2 s settled).
        Nothing to do on SQLite."""
        if self.kind != "postgresql":
            return
        import asyncpg

        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            await conn.execute("VACUUM ANALYZE outbox_events")
        finally:
            await conn.close()

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def _sqlite_file(directory: Path, tag: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"bench-{tag}.db"


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def fresh_database(kind: str, workdir: Path) -> AsyncIterator[Database]:
    """A new database migrated by ``service db upgrade``; removed afterwards."""
    from sqlalchemy.engine import make_url

    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        path = _sqlite_file(workdir, tag)
        database = Database(kind, f"sqlite:///{path}")
    else:
        name = f"bench_{tag}"
        await admin(f'CREATE DATABASE "{name}"')
        url = make_url(POSTGRES_ADMIN_URL).set(database=name)
        database = Database(kind, url.render_as_string(hide_password=False))
    try:
        code, out, err = await run_command(
            [PYTHON, "-m", "service", "db", "upgrade"], 120, service_env(database.url)
        )
        if code != 0:
            raise BenchError(f"service db upgrade failed ({code}): {err or out}")
        yield database
    finally:
        await database.dispose()
        if kind == "sqlite":
            _remove_sqlite(path)
        else:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
