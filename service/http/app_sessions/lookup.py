"""The database strategy's session, read as next-auth's ``getServerSession`` reads it: the
cookie's token looked up in the app's sessions table, joined with its user, in one statement
on the table's token index; expired when ``expires`` is before now (no tolerance).

The service never writes to the app's database (it does not slide ``expires``, nor delete an
expired row: the app does both when it reads its own sessions), and its connections are
read-only. A result is remembered for at most ``REMEMBER_FOR`` seconds, and never past the
session's ``expires``, so a session the app deleted (signed out) is refused within that time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Select, bindparam, column, event, select, table
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.elements import quoted_name

from service.config import NextAuthDatabaseSettings
from service.http.app_sessions.expires import UnreadableExpires, epoch_seconds
from service.http.app_sessions.presets import Column, Layout
from service.http.nextauth import EXPIRED, DigestMemory, SessionRefused
from service.store.backends.postgres_connect import pool_connect_args
from service.store.db_errors import UNAVAILABLE, describe_db_error
from service.store.tls import client_context

__all__ = ["DatabaseSessions", "SessionsUnavailable", "create_app_engine", "lookup_statement"]

log = logging.getLogger(__name__)

REMEMBER_FOR = 5.0  # seconds a looked-up session is used without asking the database again
REMEMBERED = 4096  # sessions remembered (and known as once valid, to say "signed out")
LOOKUP_TIMEOUT = 5.0  # seconds, connecting included: then the answer is 503
# next-auth's tokens are a UUID or 64 hex characters; an app's own generateSessionToken may
# make longer ones. Cookie octets only (RFC 6265): nothing else can be a token it set.
MAX_TOKEN_CHARS = 1024
TOKEN = re.compile(rf"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{{1,{MAX_TOKEN_CHARS}}}")
# Each connection, before its first use: read-only. Its time zone stays the database's, as
# the app's own connections have it: MySQL converts TIMESTAMP columns to and from the
# session's zone, so the app's wall time reads back only under the same one.
SESSION_SETUP = {
    "postgresql": ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",),
    "mysql": ("SET SESSION TRANSACTION READ ONLY",),
    "sqlite": ("PRAGMA query_only = ON",),
}
NOT_A_TOKEN = (
    "The session cookie is neither a next-auth session token nor a database session's token."
)
UNKNOWN = (
    "The session is not in the app's database: it never existed, or it ended (signed out); "
    "sign in again."
)
SIGNED_OUT = (
    "The session has ended: it is no longer in the app's database (signed out); sign in again."
)
UNREADABLE = "The session's expiry in the app's database cannot be read."
UNAVAILABLE_DETAIL = (
    "The app's database, where its sessions are, cannot be reached now; retry later."
)


class SessionsUnavailable(Exception):
    """The app's database cannot answer now (down, unreachable, too slow): a 503."""


def create_app_engine(settings: NextAuthDatabaseSettings, pool_size: int) -> AsyncEngine:
    """An engine on the app's database whose every connection is read-only and in UTC; each
    statement is its own (no BEGIN, no ROLLBACK: one round trip a lookup). Behind a
    transaction pooler, which keeps no session's settings, each lookup is a read-only
    transaction of its own instead."""
    pooled = settings.kind == "postgresql" and settings.postgres.pgbouncer
    options = _connection_options(settings, pool_size)
    # PostgreSQL's connections are made from the parsed URL (connect_args), which may name
    # hosts that SQLAlchemy's URL cannot (several, IPv6).
    url = "postgresql+asyncpg://" if settings.kind == "postgresql" else settings.driver_url
    engine = create_async_engine(
        url,
        isolation_level="READ COMMITTED" if pooled else "AUTOCOMMIT",
        execution_options={"postgresql_readonly": True} if pooled else {},
        **options,
    )
    statements = () if pooled else SESSION_SETUP[settings.kind]

    @event.listens_for(engine.sync_engine, "connect")
    def _read_only(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()

    return engine


def _connection_options(settings: NextAuthDatabaseSettings, pool_size: int) -> dict[str, Any]:
    """The pool and how each connection is made, as the URL says; connecting takes at most
    ``LOOKUP_TIMEOUT`` unless the URL says otherwise."""
    if settings.kind == "sqlite":
        return {"pool_size": pool_size, "max_overflow": pool_size}
    if settings.kind == "postgresql":
        url = settings.postgres
        if "connect_timeout" not in url.given:
            url = dataclasses.replace(url, connect_timeout=LOOKUP_TIMEOUT)
        limit, wait, connect_args = url.connection_limit, url.pool_timeout, pool_connect_args(url)
    else:
        mysql = settings.mysql
        connect_args = {"connect_timeout": mysql.connect_timeout or LOOKUP_TIMEOUT}
        if mysql.ssl_mode not in ("", "DISABLED"):
            connect_args["ssl"] = client_context(
                mysql.ca_file, verify_chain=mysql.verifies_chain, verify_host=mysql.verifies_host
            )
        limit, wait = mysql.connection_limit, mysql.pool_timeout
    return {
        # A connection_limit is a ceiling; otherwise as many again at peaks, as the service's
        # own PostgreSQL pool.
        "pool_size": limit or pool_size,
        "max_overflow": 0 if limit else pool_size,
        "pool_timeout": wait or LOOKUP_TIMEOUT,
        "connect_args": connect_args,
    }


def _name(name: str) -> quoted_name:
    # Always quoted: an unquoted `user` is PostgreSQL's current_user, and case must count.
    return quoted_name(name, quote=True)


def lookup_statement(layout: Layout) -> Select[Any]:
    """``SELECT expires, id, name, email, image, extras... FROM sessions JOIN users ON
    users.id = sessions.userId WHERE sessions.token = :token``, every name quoted."""
    schema = _name(layout.schema) if layout.schema else None

    def of(table_column: Column, columns: tuple[Column, ...]) -> Any:
        return table(
            _name(table_column.name), *(column(_name(c.name)) for c in columns), schema=schema
        )

    sessions = of(layout.sessions, layout.session_columns)
    users = of(layout.users, layout.user_columns)
    picked = [sessions.c[layout.expires.name].label("expires")]
    picked += [users.c[c.name].label(f"user_{n}") for n, c in enumerate(layout.user_columns)]
    joined = sessions.join(users, users.c[layout.id.name] == sessions.c[layout.user_id.name])
    return (
        select(*picked)
        .select_from(joined)
        .where(sessions.c[layout.token.name] == bindparam("token"))
    )


@dataclass(frozen=True)
class Remembered:
    """A session as looked up: its user, its ``expires`` and when it was read (seconds)."""

    user: dict[str, Any]
    expires: float
    read_at: float


class DatabaseSessions:
    """The users of database sessions, looked up in the app's database."""

    def __init__(
        self,
        engine: AsyncEngine,
        layout: Layout,
        clock: Callable[[], float],
        remember_for: float = REMEMBER_FOR,
        remembered: int = REMEMBERED,
    ) -> None:
        self.engine = engine
        self.layout = layout
        self.clock = clock
        self.remember_for = remember_for
        self.statement = lookup_statement(layout)
        self.seen: DigestMemory[Remembered] = DigestMemory(remembered)

    async def user(self, token: str) -> dict[str, Any]:
        """The user of the session ``token`` names; ``SessionRefused`` when it is unknown,
        ended or expired; ``SessionsUnavailable`` when the database cannot say."""
        if not TOKEN.fullmatch(token):
            raise SessionRefused(NOT_A_TOKEN)
        digest = hashlib.sha256(token.encode()).digest()
        seen = self.seen.get(digest)
        now = self.clock()
        if seen is not None and now - seen.read_at < self.remember_for and seen.expires >= now:
            return seen.user
        row = await self._row(token)
        now = self.clock()
        if row is None:
            if seen is None:
                raise SessionRefused(UNKNOWN)
            self.seen.forget(digest)
            # The app deletes an expired session when it reads it: then "expired" is the news.
            raise SessionRefused(EXPIRED if seen.expires < now else SIGNED_OUT)
        try:
            expires = epoch_seconds(row["expires"], in_seconds=self.layout.expires_in_seconds)
        except UnreadableExpires as exc:
            log.warning(
                "a session's expires cannot be read: %s",
                exc,
                extra={"action": "http.session_expires_unreadable"},
            )
            raise SessionRefused(UNREADABLE) from None
        if expires < now:
            self.seen.forget(digest)
            raise SessionRefused(EXPIRED)
        user = self._user(row)
        self.seen.add(digest, Remembered(user, expires, now))
        return user

    async def _row(self, token: str) -> Mapping[str, Any] | None:
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT), self.engine.connect() as conn:
                result = await conn.execute(self.statement, {"token": token})
                row: Mapping[str, Any] | None = result.mappings().first()
        except (*UNAVAILABLE, TimeoutError) as exc:
            log.error(
                "the app's database cannot look up a session: %s",
                describe_db_error(exc),
                extra={"action": "http.app_db_unavailable"},
            )
            raise SessionsUnavailable(UNAVAILABLE_DETAIL) from exc
        return row

    def _user(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """What ``getServerSession`` gives the app (``name``, ``email``, ``image`` of the user
        row, null when null) plus the id as a string and the further columns named."""
        fields = ("id", "name", "email", "image", *(c.name for c in self.layout.extras))
        values = [row[f"user_{n}"] for n in range(len(fields))]
        user = dict(zip(fields, map(_json_value, values), strict=True))
        user["id"] = str(values[0])
        return user


def _json_value(value: object) -> object:
    """A column's value as the event's JSON holds it: dates as ISO 8601 in UTC (as
    JavaScript's ``Date`` serializes), UUIDs and decimals as text, numbers and text as they
    are."""
    if value is None or isinstance(value, str | bool | int | float | dict | list):
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
