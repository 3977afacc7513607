"""Schema migrations: upgrade to head, read the current revision, check it is at head."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import SchemaNotCurrent
from service.store.engine import reading


def _alembic_ini() -> Path:
    # The project root holds alembic.ini and migrations/ (an editable install or the image's
    # working folder); fall back to the current folder for other layouts.
    project_root = Path(__file__).resolve().parents[2]  # service/store/migrations.py
    for root in (project_root, Path.cwd()):
        if (root / "alembic.ini").is_file():
            return root / "alembic.ini"
    raise FileNotFoundError("alembic.ini not found next to the service package or in .")


def alembic_config(database_url: str) -> Config:
    config = Config(str(_alembic_ini()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None, "the migrations have no head"
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run ``alembic upgrade`` (blocking; it runs its own event loop); a SQLite file's folder
    is created first, so a fresh checkout can migrate its default ``./var/service.db``, and
    the file is left in WAL mode."""
    url = make_url(database_url)
    sqlite_file = url.database if url.get_backend_name() == "sqlite" else None
    if sqlite_file in ("", ":memory:"):
        sqlite_file = None
    if sqlite_file:
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)
    if sqlite_file:
        # WAL is a property of the file. Switching it takes an exclusive lock that does not
        # wait, so the processes that open the file next (a server, relays) must not race to.
        with contextlib.closing(sqlite3.connect(sqlite_file, timeout=30)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


async def current_revision(engine: AsyncEngine) -> str | None:
    async with reading(engine) as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def ensure_at_head(engine: AsyncEngine) -> None:
    """Raise ``SchemaNotCurrent`` unless the database is at the migrations' head."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"database schema is at {current or 'nothing'}, expected {head}: "
            "run `service db upgrade`"
        )
