"""Each adapter's tables: the names it gives the sessions and users tables and their columns,
and how it stores ``expires`` on each database; and the layout of one app, which is its
adapter's preset with the app's own names laid over it (``NEXTAUTH_*`` settings).

The facts come from the adapters' own table definitions (Prisma's documented schema, the
tables of ``@auth/pg-adapter``, ``@auth/drizzle-adapter``, ``@auth/kysely-adapter``,
``@auth/typeorm-adapter``, ``@auth/sequelize-adapter``, ``@auth/mikro-orm-adapter`` and
``@auth/supabase-adapter``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.config import ADAPTERS, NextAuthDatabaseSettings

__all__ = ["PRESETS", "Layout", "Preset", "layout_of"]

# How a column stores a point in time, as the start-up check sees its declared type.
DATETIME, TEXT, NUMBER = "a date and time", "text", "a number"
# What a preset's `expires` may be on each kind of database. SQLite keeps whatever a row was
# given, whatever the column's declared type: the value's own type decides there.
ANY_SQLITE = (DATETIME, NUMBER, TEXT)


@dataclass(frozen=True)
class Preset:
    """One adapter's tables and columns, and what its ``expires`` column is on each kind of
    database it supports (a kind missing: the adapter does not run there)."""

    sessions: str
    token: str
    user_id: str
    expires: str
    users: str
    expires_types: dict[str, tuple[str, ...]]
    schema: str = ""
    id: str = "id"
    name: str = "name"
    email: str = "email"
    image: str = "image"


def _camel(
    sessions: str, users: str, expires: dict[str, tuple[str, ...]], schema: str = ""
) -> Preset:
    """The Auth.js models' camelCase columns (``sessionToken``, ``userId``)."""
    return Preset(sessions, "sessionToken", "userId", "expires", users, expires, schema)


def _snake(sessions: str, users: str, expires: dict[str, tuple[str, ...]]) -> Preset:
    """An underscoring naming strategy's columns (``session_token``, ``user_id``)."""
    return Preset(sessions, "session_token", "user_id", "expires", users, expires)


DATES = {"postgresql": (DATETIME,), "mysql": (DATETIME,), "sqlite": ANY_SQLITE}
PRESETS: dict[str, Preset] = {
    # Prisma: timestamp(3) on PostgreSQL, DATETIME(3) on MySQL, both UTC wall time; on SQLite
    # milliseconds (its own engine) or ISO text (its driver adapters).
    "prisma": _camel("Session", "User", DATES),
    # timestamptz; serial user ids.
    "pg": _camel("sessions", "users", {"postgresql": (DATETIME,)}),
    # timestamp (UTC wall time) on PostgreSQL, timestamp on MySQL, integer ms on SQLite.
    "drizzle": _camel("session", "user", {**DATES, "sqlite": (NUMBER,)}),
    # Prisma's table names; timestamptz; ISO text on SQLite.
    "kysely": _camel("Session", "User", {**DATES, "sqlite": (TEXT,)}),
    # A varchar of milliseconds since the epoch, wherever it runs.
    "typeorm": _camel(
        "sessions", "users", dict.fromkeys(("postgresql", "mysql", "sqlite"), (TEXT,))
    ),
    # timestamptz; text `YYYY-MM-DD HH:MM:SS.SSS +00:00` on SQLite.
    "sequelize": _snake("sessions", "users", DATES),
    "mikro-orm": _snake("session", "user", DATES),
    "supabase": _camel("sessions", "users", {"postgresql": (DATETIME,)}, schema="next_auth"),
}
assert set(PRESETS) == set(ADAPTERS), "a preset for every adapter the settings take"


@dataclass(frozen=True)
class Column:
    """A column the lookup reads, and the setting that names it (for start-up errors)."""

    name: str
    variable: str


@dataclass(frozen=True)
class Layout:
    """One app's tables as the lookup reads them: its adapter's preset, with its own names."""

    adapter: str
    kind: str
    schema: str
    sessions: Column
    token: Column
    user_id: Column
    expires: Column
    users: Column
    id: Column
    name: Column
    email: Column
    image: Column
    extras: tuple[Column, ...] = ()
    expires_in_seconds: bool = False
    expires_types: tuple[str, ...] = field(default=())

    @property
    def session_columns(self) -> tuple[Column, ...]:
        return (self.token, self.user_id, self.expires)

    @property
    def user_columns(self) -> tuple[Column, ...]:
        return (self.id, self.name, self.email, self.image, *self.extras)


def layout_of(settings: NextAuthDatabaseSettings) -> Layout:
    """The layout of the app's tables: each name the setting's, else the adapter's."""
    preset = PRESETS[settings.adapter]

    def named(own: str, default: str, variable: str) -> Column:
        return Column(own or default, variable)

    kind = settings.kind
    return Layout(
        adapter=settings.adapter,
        kind=kind,
        schema=settings.schema or settings.url_schema or preset.schema,
        sessions=named(settings.sessions_table, preset.sessions, "NEXTAUTH_SESSIONS_TABLE"),
        token=named(settings.session_token, preset.token, "NEXTAUTH_SESSION_TOKEN_COLUMN"),
        user_id=named(settings.session_user_id, preset.user_id, "NEXTAUTH_SESSION_USER_ID_COLUMN"),
        expires=named(settings.session_expires, preset.expires, "NEXTAUTH_SESSION_EXPIRES_COLUMN"),
        users=named(settings.users_table, preset.users, "NEXTAUTH_USERS_TABLE"),
        id=named(settings.user_id, preset.id, "NEXTAUTH_USER_ID_COLUMN"),
        name=named(settings.user_name, preset.name, "NEXTAUTH_USER_NAME_COLUMN"),
        email=named(settings.user_email, preset.email, "NEXTAUTH_USER_EMAIL_COLUMN"),
        image=named(settings.user_image, preset.image, "NEXTAUTH_USER_IMAGE_COLUMN"),
        extras=tuple(Column(c, "NEXTAUTH_USER_COLUMNS") for c in settings.user_columns),
        expires_in_seconds=settings.expires_unit == "s",
        expires_types=preset.expires_types.get(kind, ()),
    )
