"""The named statements of a backend: ``postgres.sql`` and ``sqlite.sql`` beside this module,
read once, each statement under the ``-- name: ...`` line that opens it.

Free of SQLAlchemy: the SQLite writer process reads its statements here too. Comment lines
are the file's, for its reader: they are not sent to the database.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["named_statements"]

NAME_LINE = "-- name: "


@functools.cache
def named_statements(backend: str) -> dict[str, str]:
    """The statements of ``backend.sql`` (``postgres`` or ``sqlite``) by name, as written
    there (PostgreSQL's still hold the ``{schema}`` and other fields that ``postgres_sql``
    fills in)."""
    text = resources.files(__package__).joinpath(f"{backend}.sql").read_text("utf-8")
    statements: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(NAME_LINE):
            name = line.removeprefix(NAME_LINE).strip()
            if name in statements:
                raise ValueError(f"{backend}.sql names {name} twice")
            current = statements[name] = []
        elif current is not None and line.strip() and not line.lstrip().startswith("--"):
            current.append(line)
    return {name: "\n".join(lines) for name, lines in statements.items()}
