"""An app beside the service in one PostgreSQL database: its own connections (asyncpg, plain
SQL, as any language would send it), its own table, and scratch databases migrated into a
schema of the test's choosing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.store import migrations
from service.store.backend import backend_of
from service.store.engine import create_engine, single_statement
from tests.conftest import admin_execute, make_settings, postgres_url
from tests.relay_harness import rows_by_id

APP_TABLE = "CREATE TABLE public.app_rows (id serial PRIMARY KEY, note text NOT NULL)"


async def take_in(engine: AsyncEngine) -> int:
    """Move every event that apps committed to the intake into the outbox, as a relay does
    before it claims; return how many left the intake."""
    async with single_statement(engine) as conn:
        return await backend_of(engine).take_in(conn, 1_000_000)


async def sent_rows(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """The outbox's rows by id once the intake is taken in."""
    await take_in(engine)
    return await rows_by_id(engine)


def dsn(database_url: str) -> str:
    """A SQLAlchemy URL of the test server as asyncpg takes it."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


@asynccontextmanager
async def app_connection(
    database_url: str, user: str | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the app's (as ``user``, or the test server's administrator)."""
    conn = await asyncpg.connect(dsn(database_url), user=user)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A new empty database on the test server (its SQLAlchemy URL), dropped afterwards."""
    name = f"svc_app_{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url(name)
    finally:
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def service_in(
    database_url: str, schema: str, revision: str = "head"
) -> AsyncIterator[tuple[Settings, AsyncEngine]]:
    """The service's settings and engine with its tables in ``schema`` of ``database_url``,
    migrated there first (in a thread: alembic runs an event loop of its own)."""
    settings = make_settings(database_url, database_schema=schema)
    await asyncio.to_thread(migrations.upgrade, settings, revision)
    engine = create_engine(settings)
    try:
        yield settings, engine
    finally:
        await engine.dispose()
