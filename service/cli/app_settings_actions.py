"""What ``service settings`` does with the database: read the document, or change it and, with
``--sync``, enqueue its sync event in the same transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.cli.database import run, with_engine
from service.config import Settings
from service.events.ids import now_ms
from service.events.payload import new_event
from service.store import deliveries, settings_store
from service.store.engine import reading, transaction

Change = Callable[[AsyncConnection, int], Awaitable[dict[str, Any]]]


def read(settings: Settings) -> dict[str, Any]:
    """The settings document."""

    async def work(engine: AsyncEngine) -> dict[str, Any]:
        async with reading(engine) as conn:
            return await settings_store.read(conn)

    return run(with_engine(settings, work))


def set_key(settings: Settings, key: str, value: object, sync: bool) -> str | None:
    """Set one key; the id of the sync event enqueued, if ``sync``."""
    return run(
        _store(settings, lambda conn, at: settings_store.set_key(conn, key, value, at), sync)
    )


def replace(settings: Settings, document: dict[str, Any], sync: bool) -> str | None:
    """Replace the whole document; the id of the sync event enqueued, if ``sync``."""

    async def change(conn: AsyncConnection, at: int) -> dict[str, Any]:
        await settings_store.replace(conn, document, at)
        return dict(document)

    return run(_store(settings, change, sync))


async def _store(settings: Settings, change: Change, sync: bool) -> str | None:
    async def work(engine: AsyncEngine) -> str | None:
        async with transaction(engine) as conn:
            at = now_ms()
            document = await change(conn, at)
            if not sync:
                return None
            event = new_event(document, None, at)
            await deliveries.add(conn, [event])
            return event.id

    return await with_engine(settings, work)
