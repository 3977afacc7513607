"""The start-up check of the app's tables: every table and column the lookup reads is there,
and ``expires`` is of a type the adapter stores it as. What is wrong is a ``ConfigError``
naming the setting to fix, so that ``service serve`` stops with one line (exit status 2)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ConfigError
from service.errors import DatabaseUnavailable
from service.http.app_sessions.expires import column_kind
from service.http.app_sessions.presets import Column, Layout
from service.store.connect_errors import is_misconfiguration
from service.store.db_errors import UNAVAILABLE, describe_db_error

__all__ = ["check_layout"]


async def check_layout(engine: AsyncEngine, layout: Layout) -> None:
    """Refuse tables that are not the layout's; ``DatabaseUnavailable`` when the database
    does not answer."""
    try:
        async with engine.connect() as conn:
            problem = await conn.run_sync(_problem, layout)
    except UNAVAILABLE as exc:
        raise DatabaseUnavailable(
            f"the app's database (NEXTAUTH_DATABASE_URL) is unreachable: {describe_db_error(exc)}",
            misconfigured=is_misconfiguration(exc),
        ) from exc
    if problem is not None:
        raise ConfigError(*problem)


def _problem(conn: Connection, layout: Layout) -> tuple[str, str] | None:
    """The first thing wrong, as (the setting to fix, what is wrong), or None."""
    inspector = inspect(conn)
    schema = layout.schema or None
    where = f' in schema "{layout.schema}"' if layout.schema else ""
    tables = set(inspector.get_table_names(schema=schema))
    for table, columns in (
        (layout.sessions, layout.session_columns),
        (layout.users, layout.user_columns),
    ):
        if table.name not in tables:
            return table.variable, (
                f'no table "{table.name}"{where} in the app\'s database{_adapter(layout)}'
            )
        types = {c["name"]: c["type"] for c in inspector.get_columns(table.name, schema=schema)}
        for column in columns:
            if column.name not in types:
                return column.variable, (
                    f'table "{table.name}" has no column "{column.name}"{_adapter(layout)}'
                )
        if table is layout.sessions:
            wrong = _expires_problem(layout, layout.expires, types[layout.expires.name])
            if wrong is not None:
                return wrong
    return None


def _expires_problem(layout: Layout, column: Column, declared: Any) -> tuple[str, str] | None:
    kind = column_kind(declared)
    if kind in layout.expires_types:
        return None
    expected = " or ".join(layout.expires_types)
    return "NEXTAUTH_ADAPTER", (
        f'"{layout.sessions.name}"."{column.name}" is {declared}, but the {layout.adapter}'
        f" adapter stores expires on {layout.kind} as {expected}"
    )


def _adapter(layout: Layout) -> str:
    return f" (NEXTAUTH_ADAPTER={layout.adapter})"
