"""Schema migrations: upgrade to head, read the current revision, check it is at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.errors import SchemaNotCurrent
from service.store.backend import backend_for, backend_of
from service.store.engine import reading

__all__ = ["alembic_config", "current_revision", "ensure_at_head", "head_revision", "upgrade"]


def _alembic_ini() -> Path:
    # The project root holds alembic.ini and migrations/ (an editable install or the image's
    # working folder); fall back to the current folder for other layouts.
    project_root = Path(__file__).resolve().parents[2]  # service/store/migrations.py
    for root in (project_root, Path.cwd()):
        if (root / "alembic.ini").is_file():
            return root / "alembic.ini"
    raise FileNotFoundError("alembic.ini not found next to the service package or in .")


def alembic_config(settings: Settings) -> Config:
    """alembic's configuration for the database of ``settings``."""
    config = Config(str(_alembic_ini()))
    config.attributes["settings"] = settings
    config.attributes["configure_logging"] = False
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config(Settings())).get_current_head()
    assert head is not None, "the migrations have no head"
    return head


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Run ``alembic upgrade`` (blocking; it runs its own event loop). The backend prepares the
    database first and settles it after: a SQLite file's folder is created, so a fresh
    checkout can migrate its default ``./var/service.db``, and the file is left in WAL mode;
    PostgreSQL's schema is created in the migrations' transaction."""
    backend = backend_for(settings)
    backend.before_upgrade()
    command.upgrade(alembic_config(settings), revision)
    backend.after_upgrade()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (its version table is in the backend's schema)."""
    options = {"version_table_schema": backend_of(engine).schema}
    async with reading(engine) as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync, opts=options).get_current_revision()
        )


async def ensure_at_head(engine: AsyncEngine) -> None:
    """Raise ``SchemaNotCurrent`` unless the database is at the migrations' head."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"database schema is at {current or 'nothing'}, expected {head}: "
            "run `service db upgrade`"
        )
