"""Database sessions without a database: the settings of the app's database, each adapter's
layout with the app's own names over it, the one statement (every name quoted), and
``expires`` as each adapter stores it, read in UTC whatever this machine's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import types
from sqlalchemy.dialects import mysql, postgresql, sqlite

from service.config import ADAPTERS, ConfigError, NextAuthDatabaseSettings, Settings
from service.http.app_sessions.expires import UnreadableExpires, column_kind, epoch_seconds
from service.http.app_sessions.lookup import lookup_statement
from service.http.app_sessions.presets import DATETIME, NUMBER, PRESETS, TEXT, layout_of

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
DIALECTS = {
    "postgresql": postgresql.dialect(),
    "mysql": mysql.dialect(),
    "sqlite": sqlite.dialect(),
}


def database(**env: str) -> NextAuthDatabaseSettings:
    return Settings.from_env(env).nextauth_database


def test_off_without_a_url_and_every_name_the_adapters() -> None:
    off = database()
    assert not off.enabled and off.adapter == "prisma"
    assert off == NextAuthDatabaseSettings()
    assert set(PRESETS) == set(ADAPTERS)


@pytest.mark.parametrize(
    ("url", "driver", "kind", "schema"),
    [
        ("postgresql://app@db:5432/app", "postgresql+asyncpg://app@db:5432/app", "postgresql", ""),
        (
            "postgres://app@db/app?schema=auth",
            "postgresql+asyncpg://app@db/app",
            "postgresql",
            "auth",
        ),
        (
            "postgresql://app@db/app?sslmode=require&schema=s",
            "postgresql+asyncpg://app@db/app",
            "postgresql",
            "s",
        ),
        ("mysql://root@db:3306/app", "mysql+asyncmy://root@db:3306/app", "mysql", ""),
        ("mariadb://root@db/app", "mysql+asyncmy://root@db/app", "mysql", ""),
        ("sqlite:////srv/app/dev.db", "sqlite+aiosqlite:////srv/app/dev.db", "sqlite", ""),
        ("sqlite:///prisma/dev.db", "sqlite+aiosqlite:///prisma/dev.db", "sqlite", ""),
    ],
)
def test_the_url_as_the_apps_database_url_has_it(
    url: str, driver: str, kind: str, schema: str
) -> None:
    settings = database(NEXTAUTH_DATABASE_URL=url)
    assert (settings.driver_url, settings.kind, settings.url_schema) == (driver, kind, schema)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"NEXTAUTH_DATABASE_URL": "mongodb://u:hunter2@db/app"}, "NEXTAUTH_DATABASE_URL"),
        ({"NEXTAUTH_DATABASE_URL": "postgresql://u:hunter2@db:port/app"}, "NEXTAUTH_DATABASE_URL"),
        ({"NEXTAUTH_USERS_TABLE": "User"}, "NEXTAUTH_USERS_TABLE"),
        ({"NEXTAUTH_ADAPTER": "drizzle"}, "NEXTAUTH_ADAPTER"),
        (
            {"NEXTAUTH_DATABASE_URL": "sqlite:///a.db", "NEXTAUTH_ADAPTER": "lucia"},
            "NEXTAUTH_ADAPTER",
        ),
        ({"NEXTAUTH_DATABASE_URL": "mysql://r@db/a", "NEXTAUTH_ADAPTER": "pg"}, "NEXTAUTH_ADAPTER"),
        (
            {"NEXTAUTH_DATABASE_URL": "mysql://r@db/a", "NEXTAUTH_DATABASE_SCHEMA": "s"},
            "NEXTAUTH_DATABASE_SCHEMA",
        ),
        (
            {"NEXTAUTH_DATABASE_URL": "sqlite:///a.db", "NEXTAUTH_USERS_TABLE": 'us"ers'},
            "NEXTAUTH_USERS_TABLE",
        ),
        (
            {"NEXTAUTH_DATABASE_URL": "sqlite:///a.db", "NEXTAUTH_USER_COLUMNS": "role,email"},
            "NEXTAUTH_USER_COLUMNS",
        ),
        (
            {"NEXTAUTH_DATABASE_URL": "sqlite:///a.db", "NEXTAUTH_SESSION_EXPIRES_UNIT": "us"},
            "NEXTAUTH_SESSION_EXPIRES_UNIT",
        ),
    ],
)
def test_bad_values_name_their_variable_and_never_a_password(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        database(**env)
    assert raised.value.variable == variable
    assert "hunter2" not in str(raised.value)


def test_the_cookie_name_needs_a_secret_or_the_apps_database() -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({"NEXTAUTH_COOKIE_NAME": "app.sid"})
    env = {"NEXTAUTH_COOKIE_NAME": "app.sid", "NEXTAUTH_DATABASE_URL": "sqlite:///a.db"}
    assert Settings.from_env(env).nextauth.cookie_name == "app.sid"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_each_adapters_layout(adapter: str) -> None:
    url = "mysql://r@db/a" if adapter not in ("pg", "supabase") else "postgresql://r@db/a"
    layout = layout_of(database(NEXTAUTH_DATABASE_URL=url, NEXTAUTH_ADAPTER=adapter))
    preset = PRESETS[adapter]
    assert (layout.sessions.name, layout.token.name, layout.users.name) == (
        preset.sessions,
        preset.token,
        preset.users,
    )
    assert layout.expires_types == preset.expires_types[layout.kind]
    assert layout.schema == ("next_auth" if adapter == "supabase" else "")


def test_the_apps_own_names_over_the_adapters() -> None:
    layout = layout_of(
        database(
            NEXTAUTH_DATABASE_URL="postgresql://r@db/a?schema=from_url",
            NEXTAUTH_ADAPTER="drizzle",
            NEXTAUTH_SESSIONS_TABLE="auth_sessions",
            NEXTAUTH_SESSION_TOKEN_COLUMN="session_token",
            NEXTAUTH_USER_EMAIL_COLUMN="mail",
            NEXTAUTH_USER_COLUMNS="role, orgId",
            NEXTAUTH_SESSION_EXPIRES_UNIT="s",
        )
    )
    assert layout.schema == "from_url"
    assert (layout.sessions.name, layout.token.name, layout.users.name) == (
        "auth_sessions",
        "session_token",
        "user",
    )
    assert [c.name for c in layout.user_columns] == ["id", "name", "mail", "image", "role", "orgId"]
    assert layout.token.variable == "NEXTAUTH_SESSION_TOKEN_COLUMN"
    assert layout.expires_in_seconds
    explicit = database(
        NEXTAUTH_DATABASE_URL="postgresql://r@db/a?schema=from_url",
        NEXTAUTH_DATABASE_SCHEMA="named",
    )
    assert layout_of(explicit).schema == "named"


@pytest.mark.parametrize(
    ("url", "adapter", "expected"),
    [
        (
            "postgresql://r@db/a",
            "drizzle",
            'SELECT "session"."expires" AS expires, "user"."id" AS user_0, "user"."name" AS'
            ' user_1, "user"."email" AS user_2, "user"."image" AS user_3 \nFROM "session" JOIN'
            ' "user" ON "user"."id" = "session"."userId" \nWHERE "session"."sessionToken" ='
            " %(token)s",
        ),
        (
            "mysql://r@db/a",
            "prisma",
            "SELECT `Session`.`expires` AS expires, `User`.`id` AS user_0, `User`.`name` AS"
            " user_1, `User`.`email` AS user_2, `User`.`image` AS user_3 \nFROM `Session` INNER"
            " JOIN `User` ON `User`.`id` = `Session`.`userId` \nWHERE `Session`.`sessionToken`"
            " = %s",
        ),
        (
            "postgresql://r@db/a",
            "supabase",
            'SELECT "next_auth"."sessions"."expires" AS expires',
        ),
    ],
)
def test_one_statement_every_name_quoted(url: str, adapter: str, expected: str) -> None:
    layout = layout_of(database(NEXTAUTH_DATABASE_URL=url, NEXTAUTH_ADAPTER=adapter))
    compiled = str(lookup_statement(layout).compile(dialect=DIALECTS[layout.kind]))
    assert compiled.startswith(expected)
    assert compiled.count("%") == 1 or "?" in compiled  # the token, and only it, a parameter


def test_a_hostile_name_stays_a_quoted_name() -> None:
    layout = layout_of(
        database(
            NEXTAUTH_DATABASE_URL="sqlite:///a.db",
            NEXTAUTH_ADAPTER="sequelize",
            NEXTAUTH_USER_COLUMNS="x; DROP TABLE users; --",
        )
    )
    compiled = str(lookup_statement(layout).compile(dialect=sqlite.dialect()))
    assert '"users"."x; DROP TABLE users; --" AS user_4' in compiled


MOMENTS = [
    datetime(2026, 1, 1),  # timestamp / DATETIME: UTC wall time
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))),  # timestamptz, read in +09
    1_767_225_600_000,  # Drizzle's and Prisma's milliseconds on SQLite
    1_767_225_600_000.0,
    Decimal("1767225600000"),
    "1767225600000",  # TypeORM's varchar
    "2026-01-01T00:00:00.000Z",  # Kysely on SQLite
    "2026-01-01 00:00:00.000 +00:00",  # Sequelize on SQLite
    "2026-01-01 05:30:00.000 +05:30",
    "2026-01-01T00:00:00",
]


@pytest.mark.parametrize("value", MOMENTS, ids=repr)
def test_expires_as_each_adapter_stores_it_in_utc(
    value: object, local_time_far_from_utc: None
) -> None:
    assert epoch_seconds(value) == NEW_YEAR


def test_expires_in_seconds_when_told() -> None:
    assert epoch_seconds(1_767_225_600, in_seconds=True) == NEW_YEAR
    assert epoch_seconds("1767225600", in_seconds=True) == NEW_YEAR
    assert epoch_seconds(datetime(2026, 1, 1), in_seconds=True) == NEW_YEAR


@pytest.mark.parametrize("value", [None, True, b"\x00", "tomorrow", "", [1]], ids=repr)
def test_what_is_no_point_in_time_is_unreadable(value: object) -> None:
    with pytest.raises(UnreadableExpires):
        epoch_seconds(value)


@pytest.mark.parametrize(
    ("declared", "kind"),
    [
        (postgresql.TIMESTAMP(timezone=True), DATETIME),
        (postgresql.TIMESTAMP(), DATETIME),
        (mysql.DATETIME(fsp=3), DATETIME),
        (sqlite.DATETIME(), DATETIME),
        (types.VARCHAR(255), TEXT),
        (types.TEXT(), TEXT),
        (types.INTEGER(), NUMBER),
        (types.BIGINT(), NUMBER),
        (types.NUMERIC(), NUMBER),
        (types.LargeBinary(), None),
        (types.Boolean(), None),
    ],
)
def test_how_a_columns_declared_type_stores_time(
    declared: types.TypeEngine[object], kind: str | None
) -> None:
    assert column_kind(declared) == kind
