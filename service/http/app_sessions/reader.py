"""The user of the Next.js app's session cookie: a JWE is next-auth's JWT session, anything
else a database session's token (next-auth's database strategy sets a UUID or 64 hex
characters, never chunked: no dots, where a JWE has five parts)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from service.config import Settings
from service.http.app_sessions.lookup import DatabaseSessions, create_app_engine
from service.http.app_sessions.presets import layout_of
from service.http.app_sessions.table_check import check_layout
from service.http.nextauth import NextAuthReader

__all__ = ["AppSessions", "check_app_database", "open_app_sessions"]

JWE_PARTS = 5


class AppSessions:
    """Reads the session user of a request's cookies, whichever strategy made the cookie."""

    def __init__(self, tokens: NextAuthReader, database: DatabaseSessions | None) -> None:
        self.tokens = tokens
        self.database = database

    async def user(self, cookies: Mapping[str, str]) -> dict[str, Any] | None:
        """The session's user; None when no session cookie was sent; ``SessionRefused`` when
        one was sent and does not check out; ``SessionsUnavailable`` when the app's database
        cannot say."""
        found = self.tokens.session_cookie(cookies)
        if found is None:
            return None
        name, value = found
        if self.database is not None and len(value.split(".")) != JWE_PARTS:
            return await self.database.user(value)
        return self.tokens.user_of(self.tokens.claims(name, value))


@contextlib.asynccontextmanager
async def open_app_sessions(
    settings: Settings, tokens: NextAuthReader
) -> AsyncIterator[AppSessions]:
    """The app's sessions, with a checked connection to its database when database sessions
    are read (on the JWT reader's clock); the engine is disposed at the end."""
    config = settings.nextauth_database
    if not config.enabled:
        yield AppSessions(tokens, None)
        return
    engine = create_app_engine(config, settings.db_pool_size)
    try:
        layout = layout_of(config)
        await check_layout(engine, layout)
        yield AppSessions(tokens, DatabaseSessions(engine, layout, tokens.clock))
    finally:
        await engine.dispose()


async def check_app_database(settings: Settings) -> None:
    """The start-up check alone (``service serve`` runs it before serving): ``ConfigError``
    for tables that are not the adapter's, ``DatabaseUnavailable`` when it does not answer."""
    async with open_app_sessions(settings, NextAuthReader(settings.nextauth)):
        pass
