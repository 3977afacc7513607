"""Database sessions: the sessions and users written by the adapters' own code (the node app of
``tests/nextauth-db``), read by the service from the app's own database, against what
next-auth 4's own ``getServerSession`` gives for the same cookie with the same adapter.

Setups (``tests/nextauth_tables.py``): @auth/pg-adapter with pg; @auth/kysely-adapter on
Prisma's tables, on PostgreSQL and on MariaDB; @auth/drizzle-adapter on PostgreSQL and on
SQLite; @auth/sequelize-adapter on PostgreSQL. The databases' time zones are not UTC, and the
first test runs the service in New York's. The service's own store is SQLite here: its
backend plays no part.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ConfigError, Settings
from service.errors import DatabaseUnavailable
from service.http import nextauth
from service.http.app import create_app
from service.http.app_sessions import lookup
from service.http.app_sessions.reader import check_app_database
from service.http.keys import NEXTAUTH
from service.http.nextauth import EXPIRED, NextAuthReader
from tests.conftest import SQLITE_ONLY
from tests.hosted_servers import (
    APP_PASSWORD,
    TLS_MARIADB_USER,
    Bouncer,
    Certificates,
    MariaDb,
)
from tests.integration.test_api import assert_problem, rows
from tests.integration.test_nextauth_reader import Clock
from tests.nextauth_apps import NodeApp
from tests.nextauth_cookies import PROFILE, Minter
from tests.nextauth_tables import AppDatabase, AppDatabases, mariadb_execute
from tests.tcp_forwarder import TcpForwarder

pytestmark = SQLITE_ONLY
SETUPS = ["pg", "kysely-pg", "kysely-mysql", "drizzle-pg", "drizzle-sqlite", "sequelize-pg"]
SERVERS = [s for s in SETUPS if s != "drizzle-sqlite"]
DAY = 86400.0
ADA = {"name": "Ada Lovelace", "image": "https://example.com/ada.png"}


@pytest.fixture(scope="session")
def node_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeApp]:
    app = NodeApp(tmp_path_factory.mktemp("nextauth-app") / "node.log")
    yield app
    app.close()


@pytest.fixture(scope="session")
def app_databases(
    node_app: NodeApp, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppDatabases]:
    made = AppDatabases(node_app, tmp_path_factory.mktemp("app-databases"))
    yield made
    made.drop()


class App:
    """One setup's app: its database, and next-auth's own code on it."""

    def __init__(self, node: NodeApp, database: AppDatabase) -> None:
        self.node = node
        self.database = database

    def call(self, op: str, **fields: Any) -> Any:
        return self.node(op, self.database.setup.name, self.database.node_url, **fields)

    def sign_in(self, expires: float, **user: Any) -> dict[str, Any]:
        """A new user signed in: ``{token, cookie, user}``, the session expiring at ``expires``."""
        profile = {"email": f"{uuid.uuid4().hex[:12]}@example.com", **user}
        moment = datetime.fromtimestamp(expires, UTC).isoformat(timespec="milliseconds")
        return dict(self.call("sign-in", user=profile, expires=moment))

    def session(self, token: str) -> dict[str, Any] | None:
        """What ``getServerSession`` gives the app for the cookie of ``token``."""
        found = self.call("session", token=token)
        return None if found is None else dict(found)


@pytest.fixture
def app(request: pytest.FixtureRequest, node_app: NodeApp, app_databases: AppDatabases) -> App:
    return App(node_app, app_databases[request.param])


async def service(
    aiohttp_client: Any,
    settings: Settings,
    database: AppDatabase,
    clock: Clock | None = None,
    url: str | None = None,
    **env: str,
) -> TestClient:
    """A client of the service reading ``database``'s sessions, as the variables say."""
    variables = {
        "NEXTAUTH_DATABASE_URL": url or database.url,
        "NEXTAUTH_ADAPTER": database.setup.adapter,
        **env,
    }
    configured = settings.replace(nextauth_database=Settings.from_env(variables).nextauth_database)
    made = create_app(configured)
    made[NEXTAUTH] = NextAuthReader(
        configured.nextauth, clock=clock or time.time, database_sessions=True
    )
    client: TestClient = await aiohttp_client(made)
    return client


def cookie(signed_in: dict[str, Any]) -> dict[str, str]:
    return {"Cookie": f"{signed_in['cookie']}={signed_in['token']}"}


async def last_user(engine: AsyncEngine) -> Any:
    return json.loads(str((await rows(engine))[-1]["payload"]))["user"]


async def refused(response: Any, detail: str) -> None:
    body = await assert_problem(response, 401)
    assert body["detail"] == detail


@pytest.mark.parametrize("app", SETUPS, indirect=True)
async def test_the_event_carries_the_user_get_server_session_gives(
    app: App,
    aiohttp_client: Any,
    settings: Settings,
    engine: AsyncEngine,
    local_time_far_from_utc: None,
) -> None:
    client = await service(aiohttp_client, settings, app.database)
    expires = round(time.time() + 30 * DAY, 3)
    for profile in (ADA, {"name": None}):
        signed_in = app.sign_in(expires, **profile)
        response = await client.post("/api", headers=cookie(signed_in))
        assert response.status == 200, await response.text()
        session = app.session(signed_in["token"])
        assert session is not None
        assert session["expires"] == datetime.fromtimestamp(expires, UTC).isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z")
        assert await last_user(engine) == {"id": str(signed_in["user"]["id"]), **session["user"]}


@pytest.mark.parametrize("app", SETUPS, indirect=True)
async def test_expired_once_expires_is_before_now(
    app: App,
    aiohttp_client: Any,
    settings: Settings,
    engine: AsyncEngine,
    local_time_far_from_utc: None,
) -> None:
    expires = round(time.time() - 3600, 3)  # past for next-auth too, which reads the real time
    signed_in = app.sign_in(expires, **ADA)
    clock = Clock(expires)
    client = await service(aiohttp_client, settings, app.database, clock)
    assert (await client.post("/api", headers=cookie(signed_in))).status == 200  # not before
    clock.now = expires + 0.001
    await refused(await client.post("/api", headers=cookie(signed_in)), EXPIRED)
    assert app.session(signed_in["token"]) is None  # and next-auth deletes it, as it does
    assert len(await rows(engine)) == 1


@pytest.mark.parametrize("app", SETUPS, indirect=True)
async def test_a_signed_out_session_is_refused_once_the_5_s_memory_lapses(
    app: App, aiohttp_client: Any, settings: Settings, engine: AsyncEngine
) -> None:
    signed_in = app.sign_in(time.time() + DAY, **ADA)
    clock = Clock(time.time())
    client = await service(aiohttp_client, settings, app.database, clock)
    assert (await client.post("/api", headers=cookie(signed_in))).status == 200
    app.call("sign-out", token=signed_in["token"])
    assert app.session(signed_in["token"]) is None
    clock.now += lookup.REMEMBER_FOR - 0.001
    assert (await client.post("/api", headers=cookie(signed_in))).status == 200
    clock.now += 0.001
    await refused(await client.post("/api", headers=cookie(signed_in)), lookup.SIGNED_OUT)
    assert len(await rows(engine)) == 2


@pytest.mark.parametrize("app", SETUPS, indirect=True)
async def test_an_unknown_token_is_refused_as_next_auth_finds_no_session(
    app: App, aiohttp_client: Any, settings: Settings, engine: AsyncEngine
) -> None:
    client = await service(aiohttp_client, settings, app.database)
    for token in (str(uuid.uuid4()), "ab12" * 16, "x'OR'1'='1"):
        assert app.session(token) is None
        headers = {"Cookie": f"next-auth.session-token={token}"}
        await refused(await client.post("/api", headers=headers), lookup.UNKNOWN)
    headers = {"Cookie": 'next-auth.session-token="a b"'}
    await refused(await client.post("/api", headers=headers), lookup.NOT_A_TOKEN)
    assert await rows(engine) == []


@pytest.mark.parametrize("app", ["drizzle-sqlite"], indirect=True)
async def test_a_jwt_session_without_the_apps_secret_says_so(
    app: App, aiohttp_client: Any, settings: Settings, engine: AsyncEngine, mint: Minter
) -> None:
    client = await service(aiohttp_client, settings, app.database)
    for kind in ("v4", "v5"):
        minted = mint.one(kind, claims=PROFILE)
        await refused(await client.post("/api", headers=minted.header()), nextauth.NO_SECRET)
    assert await rows(engine) == []


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the forwarder's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@pytest.mark.parametrize("app", SERVERS, indirect=True)
async def test_the_apps_database_down_is_a_503_with_retry_after(
    app: App, aiohttp_client: Any, settings: Settings, engine: AsyncEngine
) -> None:
    target = urlsplit(app.database.url)
    forwarder = TcpForwarder(target.hostname or "127.0.0.1", target.port or 0)
    port = await forwarder.start()
    clock = Clock(time.time())
    url = through(app.database.url, port)
    client = await service(aiohttp_client, settings, app.database, clock, url=url)
    signed_in = app.sign_in(time.time() + DAY, **ADA)
    assert (await client.post("/api", headers=cookie(signed_in))).status == 200
    await forwarder.stop()
    clock.now += lookup.REMEMBER_FOR
    for _ in range(2):  # a pooled connection reset, then a refused new one
        response = await client.post("/api", headers=cookie(signed_in))
        body = await assert_problem(response, 503)
        assert body["detail"] == lookup.UNAVAILABLE_DETAIL
        assert response.headers["Retry-After"] == "1"
    assert len(await rows(engine)) == 1


async def select_only_role(database: AppDatabase, role: str) -> str:
    """A role of ``database`` that may only read the two tables: the URL to connect as it."""
    sessions, users = database.setup.sessions, database.setup.users
    if database.setup.kind == "mysql":
        await mariadb_execute(
            f"CREATE USER '{role}'@'%'",
            f"GRANT SELECT ON `{database.name}`.`{sessions}` TO '{role}'@'%'",
            f"GRANT SELECT ON `{database.name}`.`{users}` TO '{role}'@'%'",
        )
    else:
        from tests.conftest import admin_execute

        await admin_execute(f'CREATE ROLE "{role}" LOGIN')
        await admin_execute(
            f'GRANT SELECT ON "{sessions}", "{users}" TO "{role}"', database=database.name
        )
    parts = urlsplit(database.url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


async def drop_role(database: AppDatabase, role: str) -> None:
    if database.setup.kind == "mysql":
        await mariadb_execute(f"DROP USER IF EXISTS '{role}'@'%'")
        return
    from tests.conftest import admin_execute

    await admin_execute(
        f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"', database=database.name
    )
    await admin_execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize("app", ["kysely-pg", "kysely-mysql", "pg"], indirect=True)
async def test_a_role_that_may_only_select_is_enough(
    app: App, aiohttp_client: Any, settings: Settings, engine: AsyncEngine
) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    url = await select_only_role(app.database, role)
    try:
        client = await service(aiohttp_client, settings, app.database, url=url)
        signed_in = app.sign_in(time.time() + DAY, **ADA)
        response = await client.post("/api", headers=cookie(signed_in))
        assert response.status == 200, await response.text()
        assert (await last_user(engine))["id"] == str(signed_in["user"]["id"])
        if app.database.setup.kind == "postgresql":  # the role really cannot write
            conn = await asyncpg.connect(url)
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f'DELETE FROM "{app.database.setup.sessions}"')
            finally:
                await conn.close()
        await client.close()
    finally:
        await drop_role(app.database, role)


@pytest.mark.parametrize("app", ["kysely-pg"], indirect=True)
async def test_the_apps_own_names_and_further_columns(
    app: App, aiohttp_client: Any, settings: Settings, engine: AsyncEngine
) -> None:
    # pg's preset (sessions, users) with Prisma's names laid over it.
    renamed = {
        "NEXTAUTH_ADAPTER": "pg",
        "NEXTAUTH_SESSIONS_TABLE": "Session",
        "NEXTAUTH_USERS_TABLE": "User",
        "NEXTAUTH_USER_COLUMNS": "emailVerified",
    }
    client = await service(aiohttp_client, settings, app.database, **renamed)
    signed_in = app.sign_in(time.time() + DAY, emailVerified="2026-03-04T05:06:07.089Z", **ADA)
    assert (await client.post("/api", headers=cookie(signed_in))).status == 200
    user = await last_user(engine)
    assert user["emailVerified"] == "2026-03-04T05:06:07.089Z"
    assert list(user) == ["id", "name", "email", "image", "emailVerified"]


@pytest.mark.parametrize(
    ("app", "env", "variable"),
    [
        ("drizzle-sqlite", {"NEXTAUTH_SESSIONS_TABLE": "sessions"}, "NEXTAUTH_SESSIONS_TABLE"),
        ("drizzle-sqlite", {"NEXTAUTH_USER_COLUMNS": "role"}, "NEXTAUTH_USER_COLUMNS"),
        (
            "drizzle-sqlite",
            {
                "NEXTAUTH_ADAPTER": "typeorm",
                "NEXTAUTH_SESSIONS_TABLE": "session",
                "NEXTAUTH_USERS_TABLE": "user",
            },
            "NEXTAUTH_ADAPTER",
        ),
        ("kysely-pg", {"NEXTAUTH_ADAPTER": "typeorm"}, "NEXTAUTH_SESSIONS_TABLE"),
        (
            "kysely-pg",
            {"NEXTAUTH_ADAPTER": "kysely", "NEXTAUTH_USERS_TABLE": "users"},
            "NEXTAUTH_USERS_TABLE",
        ),
        (
            "drizzle-pg",
            {
                "NEXTAUTH_ADAPTER": "typeorm",
                "NEXTAUTH_SESSIONS_TABLE": "session",
                "NEXTAUTH_USERS_TABLE": "user",
            },
            "NEXTAUTH_ADAPTER",
        ),
        ("kysely-pg", {"NEXTAUTH_SESSION_TOKEN_COLUMN": "token"}, "NEXTAUTH_SESSION_TOKEN_COLUMN"),
        ("kysely-pg", {"NEXTAUTH_DATABASE_SCHEMA": "next_auth"}, "NEXTAUTH_SESSIONS_TABLE"),
    ],
    indirect=["app"],
)
async def test_tables_that_are_not_the_adapters_stop_the_start(
    app: App, settings: Settings, env: dict[str, str], variable: str
) -> None:
    variables = {
        "NEXTAUTH_DATABASE_URL": app.database.url,
        "NEXTAUTH_ADAPTER": app.database.setup.adapter,
        **env,
    }
    configured = settings.replace(nextauth_database=Settings.from_env(variables).nextauth_database)
    with pytest.raises(ConfigError) as raised:
        await check_app_database(configured)
    assert raised.value.variable == variable, str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("app", ["drizzle-sqlite"], indirect=True)
def test_service_serve_stops_with_one_line_naming_the_setting(
    app: App, database_url: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from service.cli.main import main

    env = {
        "DATABASE_URL": database_url.replace("+aiosqlite", ""),
        "NEXTAUTH_DATABASE_URL": app.database.url,
        "NEXTAUTH_ADAPTER": "prisma",
        "INNGEST_DEV": "1",
    }
    result = CliRunner().invoke(main, ["serve", "--no-relay"], env=env)
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith('error: NEXTAUTH_SESSIONS_TABLE: no table "Session"')


@pytest.mark.parametrize("app", ["pg"], indirect=True)
async def test_sessions_are_read_over_tls_as_a_hosted_url_says(
    app: App,
    aiohttp_client: Any,
    settings: Settings,
    engine: AsyncEngine,
    tls_front: Bouncer,
    certificates: Certificates,
) -> None:
    # The app's URL as a hosted provider's pooler gives it: TLS required, pgbouncer=true.
    # The pooler refuses clients without TLS, and the certificate is checked to its host.
    hosted = tls_front.url(
        user="postgres",
        password=None,
        database=app.database.name,
        sslmode="verify-full",
        sslrootcert=certificates.ca,
        pgbouncer="true",
    )
    client = await service(aiohttp_client, settings, app.database, url=hosted)
    signed_in = app.sign_in(time.time() + DAY, **ADA)
    response = await client.post("/api", headers=cookie(signed_in))
    assert response.status == 200, await response.text()
    assert (await last_user(engine))["name"] == ADA["name"]
    plain = tls_front.url(user="postgres", password=None, database=app.database.name)
    with pytest.raises(DatabaseUnavailable) as refused_plain:
        await service(aiohttp_client, settings, app.database, url=plain + "?sslmode=disable")
    assert refused_plain.value.misconfigured
    assert "the server refuses connections without TLS" in str(refused_plain.value)


@pytest.fixture(scope="session")
def tls_app_databases(
    node_app: NodeApp, tls_mariadb: MariaDb, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppDatabases]:
    made = AppDatabases(node_app, tmp_path_factory.mktemp("tls-apps"), tls_mariadb.admin_url)
    yield made
    made.drop()


@pytest.fixture
def tls_mariadb_app(node_app: NodeApp, tls_app_databases: AppDatabases) -> App:
    """Prisma's tables (through Kysely) on the MariaDB with TLS."""
    return App(node_app, tls_app_databases["kysely-mysql"])


@pytest.mark.parametrize(
    "tls", ["ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}", "sslaccept=strict&sslcert={ca}"]
)
async def test_sessions_are_read_from_mariadb_over_tls(
    tls_mariadb_app: App,
    tls_mariadb: MariaDb,
    certificates: Certificates,
    aiohttp_client: Any,
    settings: Settings,
    engine: AsyncEngine,
    tls: str,
) -> None:
    # The service's role may log in over TLS only (REQUIRE SSL); the names are MySQL's own
    # and Prisma's, the certificate checked to its host.
    app = tls_mariadb_app
    credentials = f"{TLS_MARIADB_USER}:{quote(APP_PASSWORD, safe='')}"
    where = f"mysql://{credentials}@localhost:{tls_mariadb.port}/{app.database.name}"
    url = f"{where}?{tls.format(ca=certificates.ca)}"
    client = await service(aiohttp_client, settings, app.database, url=url)
    signed_in = app.sign_in(time.time() + DAY, **ADA)
    response = await client.post("/api", headers=cookie(signed_in))
    assert response.status == 200, await response.text()
    assert (await last_user(engine))["name"] == ADA["name"]
    wrong = f"{where}?ssl-mode=VERIFY_IDENTITY&ssl-ca={certificates.wrong_ca}"
    with pytest.raises(DatabaseUnavailable) as refused_wrong:
        await service(aiohttp_client, settings, app.database, url=wrong)
    assert refused_wrong.value.misconfigured
    assert "not signed by a CA this client trusts" in str(refused_wrong.value)
