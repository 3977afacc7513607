"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, settings, an app client.

Every test database is built by ``alembic upgrade head``: once per session into a template
(a SQLite file, a PostgreSQL template database), then copied for each test, which is fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import hypothesis
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import InngestSettings, RelaySettings, Settings
from service.store import migrations
from service.store.engine import create_engine
from tests.nextauth_cookies import Minter

# The private TLS clusters and PgBouncer of the hosted-database tests.
pytest_plugins = ["tests.hosted_servers"]

# No example may fail for taking long: on a machine busy with other work every one is slower.
hypothesis.settings.register_profile("service", deadline=None)
hypothesis.settings.load_profile("service")

TOKEN = "test-internal-token-0123456789abcdef"
SECRET = "test-session-secret-0123456789abcdefghijklmnop"
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")
# A test of what one backend does its own way runs on that backend only: the other one does
# not collect it (rather than skip it).
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
POSTGRESQL_ONLY = pytest.mark.parametrize("backend", ["postgresql"])


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def postgres_reason() -> str | None:
    """None when the PostgreSQL server answers, else why the PostgreSQL tests are skipped."""
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}"
    await conn.close()
    return None


async def admin_execute(*statements: str, database: str | None = None) -> None:
    """Run ``statements`` as the test server's admin (in ``database``, else the admin's)."""
    url = POSTGRES_ADMIN_URL if database is None else postgres_url(database)
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrations.upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    return path


def require_postgres() -> None:
    """Skip without the PostgreSQL server (fail instead with REQUIRE_POSTGRES set, as in CI)."""
    reason = asyncio.run(postgres_reason())
    if reason and os.environ.get("REQUIRE_POSTGRES"):
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    require_postgres()
    name = f"svc_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_execute(f'CREATE DATABASE "{name}"'))
    migrations.upgrade(Settings(database_url=postgres_url(name)))
    yield name
    asyncio.run(admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_template(backend: str, request: pytest.FixtureRequest) -> str:
    """The migrated template of the test's backend (sync: alembic runs its own loop)."""
    if backend == "sqlite":
        return str(request.getfixturevalue("sqlite_template"))
    return str(request.getfixturevalue("postgres_template"))


@pytest.fixture
async def database_url(backend: str, database_template: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, on the test's backend."""
    if backend == "sqlite":
        path = tmp_path / "service.db"
        shutil.copyfile(database_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"svc_{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{database_template}"')
    yield postgres_url(name)
    await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the test server."""
    base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0]
    return f"{base}/{database}"


def make_settings(database_url: str, **changes: object) -> Settings:
    """Settings for tests: known secrets, a short busy timeout, Inngest nowhere by default."""
    settings = Settings(
        database_url=database_url,
        sqlite_busy_timeout_ms=1000,
        session_secret=SECRET,
        internal_api_tokens=(TOKEN,),
        log_format="text",
        inngest=InngestSettings(
            origin="http://127.0.0.1:9", event_key="test-event-key", dev_mode=False
        ),
        relay=RelaySettings(),
    )
    return settings.replace(**changes)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    from service.http.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """The app of ``create_app(settings)`` on a real socket, for blocking HTTP clients."""
    from tests.live_server import LiveServer

    with LiveServer(settings) as server:
        yield server.url


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def mint() -> Minter:
    """Session cookies made by next-auth's own code (skips without node; fails so in CI)."""
    return Minter()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were before the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def local_time_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time is New York's (4 or 5 hours off UTC) during the test."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
