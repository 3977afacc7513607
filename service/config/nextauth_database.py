"""The Next.js app's own database, where next-auth's database sessions live: its URL, the
adapter whose tables it holds, and the names an app may have given those tables and columns.

Empty names mean "the adapter's": ``service.http.app_sessions.presets`` knows each adapter's
tables, columns and how it stores ``expires``; these settings only say what the app changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from service.config.database_url import PostgresUrl, parse_postgres_url, with_libpq_environment
from service.config.mysql_url import MysqlUrl, parse_mysql_url
from service.config.variables import (
    ConfigError,
    choice,
    comma_list,
    declared,
    read_declared,
    setting,
)

__all__ = ["ADAPTERS", "APP_DATABASE_KINDS", "NextAuthDatabaseSettings", "app_database_url"]

# The adapters whose tables the service knows (presets in service.http.app_sessions.presets).
ADAPTERS = ("prisma", "pg", "drizzle", "kysely", "typeorm", "sequelize", "mikro-orm", "supabase")
# The URL prefixes taken, the async driver each maps onto, and the kind of database it is.
APP_DATABASE_KINDS = (
    ("postgresql://", "postgresql+asyncpg://", "postgresql"),
    ("postgres://", "postgresql+asyncpg://", "postgresql"),
    ("postgresql+asyncpg://", "postgresql+asyncpg://", "postgresql"),
    ("mysql://", "mysql+asyncmy://", "mysql"),
    ("mariadb://", "mysql+asyncmy://", "mysql"),
    ("mysql+asyncmy://", "mysql+asyncmy://", "mysql"),
    ("sqlite://", "sqlite+aiosqlite://", "sqlite"),
    ("sqlite+aiosqlite://", "sqlite+aiosqlite://", "sqlite"),
)
# A name the service quotes as an identifier: printable, no quote characters of any of the
# three databases, at most PostgreSQL's 63 bytes (MySQL takes 64).
IDENTIFIER = re.compile(r"[^\x00-\x1f\x7f\"`\[\]]{1,63}")


def app_database_url(url: str) -> tuple[str, str, str]:
    """``(SQLAlchemy URL, kind, schema)`` of the app's database URL as the app's own
    ``DATABASE_URL`` has it: Prisma's ``?schema=`` names the PostgreSQL schema. The URL's
    parameters are checked (``parse_postgres_url``, ``parse_mysql_url``); a malformed URL is
    refused without echoing it (it may hold a password)."""
    if any(c.isspace() for c in url):
        raise ValueError("not a valid database URL (check its port and characters)")
    for plain, driver, kind in APP_DATABASE_KINDS:
        if not url.startswith(plain):
            continue
        if kind == "postgresql":
            # The driver's connections are made from the parsed URL (postgres_connect): the
            # engine's own URL only names the database, without the parameters.
            schema = parse_postgres_url(url, schema_check=identifier).schema
            return driver + url[len(plain) :].partition("?")[0], kind, schema
        if kind == "mysql":
            return driver + parse_mysql_url(url).base[len(plain) :], kind, ""
        try:
            _ = urlsplit(url).port  # a port that is not a number raises here
        except ValueError:
            raise ValueError("not a valid database URL (check its port and characters)") from None
        return driver + url[len(plain) :], kind, ""
    raise ValueError("must be a postgresql://, mysql:// or sqlite:/// URL")


def identifier(raw: str) -> str:
    """A table, column or schema name, taken as written (quoted, so case counts)."""
    if not IDENTIFIER.fullmatch(raw):
        raise ValueError(f"not a name the service can quote: {raw!r}")
    return raw


def _check_identifier(raw: str) -> None:
    identifier(raw)


def _url(raw: str) -> str:
    app_database_url(raw)
    return raw


ADAPTER_OWN = "the adapter's"


def _name(variable: str, what: str, example: str) -> Any:
    """A table's or column's name: empty, the adapter's."""
    return setting(variable, "", identifier, f"{what} {example}", shown=ADAPTER_OWN)


@dataclass(frozen=True)
class NextAuthDatabaseSettings:
    """Where and how to read next-auth's database sessions; off without a URL. Every name left
    empty is the adapter's (``NEXTAUTH_ADAPTER``)."""

    url: str = setting(
        "NEXTAUTH_DATABASE_URL",
        "",
        _url,
        "the Next.js app's own database, read-only, for next-auth's database sessions"
        " (`postgresql://`, `mysql://` or `sqlite:///`, as the app's `DATABASE_URL`; see"
        ' "The Next.js app\'s session")',
        shown="none: database sessions not read",
    )
    adapter: str = setting(
        "NEXTAUTH_ADAPTER",
        "prisma",
        choice(*ADAPTERS),
        "the adapter that made the app's tables: `prisma`, `pg`, `drizzle`, `kysely`, `typeorm`,"
        " `sequelize`, `mikro-orm` or `supabase`",
    )
    schema: str = setting(
        "NEXTAUTH_DATABASE_SCHEMA",
        "",
        identifier,
        "the PostgreSQL schema of the tables (Supabase's `next_auth`; Prisma's `?schema=` in"
        " the URL says the same)",
        shown="the adapter's (the search path)",
    )
    sessions_table: str = _name("NEXTAUTH_SESSIONS_TABLE", "the sessions table,", "e.g. `Session`")
    session_token: str = _name(
        "NEXTAUTH_SESSION_TOKEN_COLUMN", "its token column,", "e.g. `sessionToken`"
    )
    session_user_id: str = _name(
        "NEXTAUTH_SESSION_USER_ID_COLUMN", "its user id column,", "e.g. `userId`"
    )
    session_expires: str = _name(
        "NEXTAUTH_SESSION_EXPIRES_COLUMN", "its expiry column,", "e.g. `expires`"
    )
    users_table: str = _name("NEXTAUTH_USERS_TABLE", "the users table,", "e.g. `User`")
    user_id: str = _name("NEXTAUTH_USER_ID_COLUMN", "its id column,", "e.g. `id`")
    user_name: str = _name("NEXTAUTH_USER_NAME_COLUMN", "its name column,", "e.g. `name`")
    user_email: str = _name("NEXTAUTH_USER_EMAIL_COLUMN", "its email column,", "e.g. `email`")
    user_image: str = _name("NEXTAUTH_USER_IMAGE_COLUMN", "its image column,", "e.g. `image`")
    user_columns: tuple[str, ...] = setting(
        "NEXTAUTH_USER_COLUMNS",
        (),
        comma_list(_check_identifier),
        "comma-separated further columns of the user's row copied into the event's user,"
        " e.g. `role,orgId`",
    )
    expires_unit: str = setting(
        "NEXTAUTH_SESSION_EXPIRES_UNIT",
        "",
        choice("ms", "s"),
        "what an `expires` stored as a number counts: `ms` (every adapter's) or `s` (a"
        ' Drizzle table of `mode: "timestamp"`)',
        shown="`ms`",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def driver_url(self) -> str:
        """The SQLAlchemy URL of the async driver."""
        return app_database_url(self.url)[0]

    @property
    def kind(self) -> str:
        """``postgresql``, ``mysql`` or ``sqlite``: the kind of database the URL names."""
        return app_database_url(self.url)[1]

    @property
    def postgres(self) -> PostgresUrl:
        """The URL read whole (a PostgreSQL database)."""
        return parse_postgres_url(self.url, schema_check=identifier)

    @property
    def mysql(self) -> MysqlUrl:
        """The URL read whole (a MySQL or MariaDB database)."""
        return parse_mysql_url(self.url)

    @property
    def url_schema(self) -> str:
        """The schema named by the URL's ``?schema=`` (Prisma's), if any."""
        return app_database_url(self.url)[2]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NextAuthDatabaseSettings:
        values = read_declared(cls, env)
        if not values["url"]:
            for name, variable in declared(cls).items():
                if name != "url" and variable.is_set(env):
                    raise ConfigError(
                        variable.name, "needs NEXTAUTH_DATABASE_URL, the app's database"
                    )
            return cls(**values)
        kind = app_database_url(values["url"])[1]
        if kind == "postgresql":
            values["url"] = _with_environment(values["url"], env)
        if kind != "postgresql" and (values["schema"] or app_database_url(values["url"])[2]):
            raise ConfigError("NEXTAUTH_DATABASE_SCHEMA", "only PostgreSQL has schemas")
        if values["adapter"] in ("pg", "supabase") and kind != "postgresql":
            raise ConfigError("NEXTAUTH_ADAPTER", f"{values['adapter']} is PostgreSQL's only")
        mapped = {"id", "name", "email", "image"}.intersection(values["user_columns"])
        if mapped:
            raise ConfigError(
                "NEXTAUTH_USER_COLUMNS", f"mapped already: {', '.join(sorted(mapped))}"
            )
        return cls(**values)


def _with_environment(url: str, env: Mapping[str, str]) -> str:
    """A PostgreSQL URL with what libpq reads from ``env`` folded in, checked."""
    folded = with_libpq_environment(url, env)
    try:
        parse_postgres_url(folded, schema_check=identifier)
    except ValueError as exc:
        raise ConfigError("NEXTAUTH_DATABASE_URL", f"{exc} (with the PG* variables)") from None
    return folded
