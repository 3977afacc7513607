"""The Next.js app's databases of the database-session tests: one per adapter setup, made once
per test session with that adapter's tables (the DDL its documentation gives, or the ORM's own
sync), on PostgreSQL, MariaDB or a SQLite file.

The PostgreSQL databases run in a time zone far from UTC (``Pacific/Chatham``, +12:45 or
+13:45), and the app's MariaDB connections in +09:00: the service must read ``expires`` in UTC
whatever the database's session says.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncmy
import pytest

from tests.conftest import POSTGRES_ADMIN_URL, admin_execute, postgres_reason
from tests.nextauth_apps import NodeApp
from tests.nextauth_ddl import (
    DRIZZLE_POSTGRES,
    DRIZZLE_SQLITE,
    PG_ADAPTER,
    PRISMA_MYSQL,
    PRISMA_POSTGRES,
)

MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
DATABASE_TIME_ZONE = "Pacific/Chatham"
APP_SESSION_TIME_ZONE = "+09:00"  # the app's own MariaDB sessions


@dataclass(frozen=True)
class Setup:
    """An adapter on a database: the node app's name for it, the service's adapter setting,
    the kind of database, and the tables' DDL (empty: the ORM makes them)."""

    name: str
    adapter: str
    kind: str
    ddl: tuple[str, ...]
    sessions: str
    users: str


SETUPS = {
    s.name: s
    for s in (
        Setup("pg", "pg", "postgresql", PG_ADAPTER, "sessions", "users"),
        Setup("kysely-pg", "prisma", "postgresql", PRISMA_POSTGRES, "Session", "User"),
        Setup("kysely-mysql", "prisma", "mysql", PRISMA_MYSQL, "Session", "User"),
        Setup("drizzle-pg", "drizzle", "postgresql", DRIZZLE_POSTGRES, "session", "user"),
        Setup("drizzle-sqlite", "drizzle", "sqlite", DRIZZLE_SQLITE, "session", "user"),
        Setup("sequelize-pg", "sequelize", "postgresql", (), "sessions", "users"),
    )
}


@dataclass(frozen=True)
class AppDatabase:
    """One app's database: its setup, the URL the node app connects with, the service's
    ``NEXTAUTH_DATABASE_URL`` and the database's name (or file)."""

    setup: Setup
    node_url: str
    url: str
    name: str


def mysql_parts(url: str = MARIADB_ADMIN_URL) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
    }


async def mariadb_execute(
    *statements: str, database: str | None = None, server: str = MARIADB_ADMIN_URL
) -> None:
    conn = await asyncmy.connect(**mysql_parts(server), database=database)
    try:
        async with conn.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)
        await conn.commit()
    finally:
        conn.close()


async def mariadb_reason() -> str | None:
    """None when MariaDB answers, else why its tests are skipped."""
    try:
        await asyncio.wait_for(mariadb_execute("SELECT 1"), 5)
    except (OSError, asyncmy.errors.Error, TimeoutError) as exc:
        return f"MariaDB unreachable at {MARIADB_ADMIN_URL}: {exc}"
    return None


def require_server(kind: str) -> None:
    """Skip (or, with REQUIRE_POSTGRES / REQUIRE_MARIADB set, as in CI, fail) without the
    server a setup needs."""
    if kind == "postgresql":
        reason, required = asyncio.run(postgres_reason()), os.environ.get("REQUIRE_POSTGRES")
    elif kind == "mysql":
        reason, required = asyncio.run(mariadb_reason()), os.environ.get("REQUIRE_MARIADB")
    else:
        return
    if reason and required:
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


def postgres_base() -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0]


class AppDatabases:
    """Each setup's database, made on first use and dropped at the end of the session; the
    MariaDB ones on the server of ``mariadb_url``."""

    def __init__(self, app: NodeApp, folder: Path, mariadb_url: str = MARIADB_ADMIN_URL) -> None:
        self.app = app
        self.folder = folder
        self.mariadb_url = mariadb_url
        self._made: dict[str, AppDatabase] = {}

    def __getitem__(self, setup_name: str) -> AppDatabase:
        if setup_name not in self._made:
            self._made[setup_name] = self._make(SETUPS[setup_name])
        return self._made[setup_name]

    def _make(self, setup: Setup) -> AppDatabase:
        require_server(setup.kind)
        name = f"nextauth_{setup.name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        if setup.kind == "sqlite":
            path = self.folder / f"{name}.db"
            with sqlite3.connect(path) as conn:
                for statement in setup.ddl:
                    conn.execute(statement)
            database = AppDatabase(setup, str(path), f"sqlite:///{path}", str(path))
        elif setup.kind == "mysql":
            server = self.mariadb_url
            asyncio.run(mariadb_execute(f"CREATE DATABASE `{name}`", server=server))
            asyncio.run(mariadb_execute(*setup.ddl, database=name, server=server))
            base = server.rsplit("/", 1)[0]
            zone = APP_SESSION_TIME_ZONE.replace("+", "%2B")
            node = f"{base}/{name}?session_time_zone={zone}"
            database = AppDatabase(setup, node, f"{base}/{name}", name)
        else:
            asyncio.run(
                admin_execute(
                    f'CREATE DATABASE "{name}"',
                    f"ALTER DATABASE \"{name}\" SET timezone TO '{DATABASE_TIME_ZONE}'",
                )
            )
            url = f"{postgres_base()}/{name}"
            if setup.ddl:
                asyncio.run(admin_execute(*setup.ddl, database=name))
            database = AppDatabase(setup, url, url, name)
        self.app("sync", setup.name, database.node_url)
        return database

    def drop(self) -> None:
        for database in self._made.values():
            self.app("close", database.setup.name, database.node_url)
            if database.setup.kind == "postgresql":
                asyncio.run(
                    admin_execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
                )
            elif database.setup.kind == "mysql":
                drop = f"DROP DATABASE IF EXISTS `{database.name}`"
                asyncio.run(mariadb_execute(drop, server=self.mariadb_url))
