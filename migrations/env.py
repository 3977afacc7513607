"""Alembic environment: runs the same scripts on SQLite and PostgreSQL through the async drivers."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from service.config import Settings
from service.store.backend import backend_for
from service.store.tables import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    """The settings ``service db upgrade`` was given, else the environment's (plain alembic)."""
    given = config.attributes.get("settings")
    return given if isinstance(given, Settings) else Settings.from_env()


def _run(connection: Connection) -> None:
    backend = backend_for(_settings())
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them: batch mode does that for us.
        render_as_batch=backend.migrates_by_copy,
        version_table_schema=backend.schema,
    )
    with context.begin_transaction():
        for statement in backend.migration_preamble():
            connection.exec_driver_sql(statement)
        context.run_migrations()
        for statement in backend.migration_epilogue():
            connection.exec_driver_sql(statement)


async def _run_online() -> None:
    engine = backend_for(_settings()).migration_engine()
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_settings().database_url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
