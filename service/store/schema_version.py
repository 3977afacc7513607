"""Whether a database has the schema this code reads and writes: the revision alembic recorded
in it (its ``alembic_version`` table) against ``HEAD``, the migrations' head.

Read without alembic: loading it for this one check would cost every long-running process
about 10 MiB and each outbox command a third of a second. ``migrations`` runs alembic itself,
and a unit test keeps ``HEAD`` equal to its scripts' head.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import SchemaNotCurrent
from service.store.backend import backend_of
from service.store.engine import reading

__all__ = ["HEAD", "current_revision", "ensure_at_head"]

HEAD = "0009"  # the newest script of migrations/versions/
VERSION_TABLE = "alembic_version"


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database's schema is at; None before the first migration. The version
    table is where the migrations put it: in the backend's schema, when it has one. A SQLite
    file that is not there raises ``SchemaNotCurrent``: opening it would make an empty one."""
    backend = backend_of(engine)
    missing = backend.missing()
    if missing is not None:
        raise SchemaNotCurrent(missing)
    where = backend.schema
    async with reading(engine) as conn:
        return await conn.run_sync(lambda sync: _recorded_revision(sync, where))


def _recorded_revision(conn: Connection, where: str | None) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE, schema=where):
        return None
    table = VERSION_TABLE if where is None else f'"{where}".{VERSION_TABLE}'
    revisions = conn.execute(text(f"SELECT version_num FROM {table}")).scalars().all()
    # One row on a linear history; several would be branches this project never makes.
    return ", ".join(sorted(revisions)) or None


async def ensure_at_head(engine: AsyncEngine) -> None:
    """Raise ``SchemaNotCurrent`` unless the database is at the migrations' head."""
    current = await current_revision(engine)
    if current is None:
        raise SchemaNotCurrent("the database has no service schema: run `service db upgrade`")
    if current != HEAD:
        raise SchemaNotCurrent(
            f"the database's schema is at revision {current}, this code needs {HEAD}:"
            " run `service db upgrade` (or run the code that matches the database)"
        )
