"""Schema migrations: alembic's ``upgrade``, run by ``service db upgrade`` (and the tests).
Which revision a database is at, and whether that is the head, is ``schema_version``'s business."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from service.config import Settings
from service.store.backend import backend_for

__all__ = ["alembic_config", "head_revision", "upgrade"]


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
    """The newest revision of the migration scripts (``schema.HEAD`` must be it)."""
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
