"""Which backend's ``send_event`` writes an app's event: the app's engine is its own, not one a
backend made, so its connection's dialect says."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.backends.base import AppWrites

__all__ = ["app_writes_of"]


def app_writes_of(conn: AsyncConnection) -> AppWrites:
    """How ``send_event`` writes on an app's connection (its engine is the app's own)."""
    if conn.dialect.name == "sqlite":
        from service.store.backends.sqlite import APP_WRITES as SQLITE_WRITES

        return SQLITE_WRITES
    from service.store.backends.postgres import APP_WRITES as POSTGRES_WRITES

    return POSTGRES_WRITES
