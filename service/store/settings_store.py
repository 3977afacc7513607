"""The app settings document (the seed's getAppSettings): one JSON object, ``{}`` until set."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.errors import InvalidInput
from service.events.payload import dumps
from service.store.backend import backend_of
from service.store.backends.rows import APP_SETTINGS_ROW, EMPTY_DOCUMENT
from service.store.tables import app_settings

__all__ = ["read", "read_json", "read_with_time", "replace", "set_key"]


async def read_json(conn: AsyncConnection) -> str:
    """The document as stored (compact JSON text), ``{}`` when none was ever set."""
    stored = await conn.scalar(
        select(app_settings.c.document).where(app_settings.c.id == APP_SETTINGS_ROW)
    )
    return EMPTY_DOCUMENT if stored is None else str(stored)


async def read(conn: AsyncConnection) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(await read_json(conn))
    return document


async def read_with_time(conn: AsyncConnection) -> tuple[dict[str, Any], int | None]:
    """The document and when it was last changed (None: never set)."""
    row = (
        await conn.execute(
            select(app_settings.c.document, app_settings.c.updated_at).where(
                app_settings.c.id == APP_SETTINGS_ROW
            )
        )
    ).first()
    if row is None:
        return json.loads(EMPTY_DOCUMENT), None
    return json.loads(row.document), int(row.updated_at)


async def replace(conn: AsyncConnection, document: object, now: int) -> str:
    """Store ``document`` (a JSON object) in the caller's transaction; return its JSON text."""
    if not isinstance(document, dict):
        raise InvalidInput("the app settings must be a JSON object")
    stored = dumps(document)
    try:
        stored.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") parses but cannot be stored
        raise InvalidInput("the app settings hold text that is not valid Unicode") from None
    await backend_of(conn).save_settings(conn, stored, now)
    return stored


async def set_key(conn: AsyncConnection, key: str, value: object, now: int) -> dict[str, Any]:
    """Set one top-level key, keeping the rest; return the new document."""
    # Lock the row first on PostgreSQL so two concurrent edits do not lose one another.
    await conn.execute(
        update(app_settings)
        .where(app_settings.c.id == APP_SETTINGS_ROW)
        .values(updated_at=app_settings.c.updated_at)
    )
    document = await read(conn)
    document[key] = value
    await replace(conn, document, now)
    return document
