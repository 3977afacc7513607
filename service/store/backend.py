"""The backend of a database: chosen by ``DATABASE_URL`` when an engine is made, and carried by
that engine, so that the rest of the store asks its engine or connection (``backend_of``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.config import Settings
from service.store.backends.base import BACKEND_OPTION, Backend

__all__ = ["Backend", "backend_for", "backend_of"]


def backend_for(settings: Settings) -> Backend:
    """The backend of ``settings.database_url`` (validated already: SQLite or PostgreSQL)."""
    # Only the chosen backend's module is imported: a process loads its own database's driver
    # and SQLAlchemy dialect, never the other's.
    if settings.database_url.startswith("sqlite"):
        from service.store.backends.sqlite import SqliteBackend

        return SqliteBackend(settings)
    from service.store.backends.postgres import PostgresBackend

    return PostgresBackend(settings)


def backend_of(bind: AsyncEngine | AsyncConnection) -> Backend:
    """The backend whose engine ``bind`` is, or belongs to."""
    engine = bind if isinstance(bind, AsyncEngine) else bind.engine
    backend: Backend = engine.get_execution_options()[BACKEND_OPTION]
    return backend
