"""The one shape of a row the outbox INSERT takes, and the settings document it reads.

``OutboxRow`` is that shape: both backends' ``insert_events`` name its fields where the file
says ``{row_...}`` (``row_sql_fields``): SQLite reads them as the items of a JSON array,
PostgreSQL as ``unnest``'s arrays, in the same order; each field but the payload's parts is
the column of its name. A field added here is written by both; a test holds the statements and
the table to it. Free of
SQLAlchemy: the SQLite writer process builds its statement's argument from these too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, get_type_hints

from service.errors import DatabaseUnavailable
from service.events.payload import EVENT_NAME, EventShell, NewEvent, dumps
from service.events.trace import TraceContext

__all__ = [
    "APP_SETTINGS_ROW",
    "COLUMN_FIELDS",
    "EMPTY_DOCUMENT",
    "ID_POSITION",
    "PAYLOAD_FIELDS",
    "ROW_FIELDS",
    "OutboxRow",
    "as_arrays",
    "as_json",
    "insert_rows",
    "integer_fields",
    "new_complete_events",
    "row_sql_fields",
]

# The app settings document is the one row of its table, ``{}`` until set (the statements
# that read it say so too).
APP_SETTINGS_ROW = 1
EMPTY_DOCUMENT = "{}"


class OutboxRow(NamedTuple):
    """One new row of the outbox. Its payload is ``head`` when ``tail`` is None (a complete
    event), else ``head + settings + tail`` (an ``openapi/app.sync`` shell whose data is the
    settings document the statement reads)."""

    id: str
    name: str
    head: str
    tail: str | None
    created_at: int
    env: str | None
    replay_of: str | None
    inngest_id: str | None
    traceparent: str | None
    tracestate: str | None


ROW_FIELDS = OutboxRow._fields
ID_POSITION = ROW_FIELDS.index("id")  # where a row's id is in its JSON array
# The fields that the INSERT makes the payload of; every other one is a column of its name.
PAYLOAD_FIELDS = ("head", "tail")
COLUMN_FIELDS = tuple(name for name in ROW_FIELDS if name not in PAYLOAD_FIELDS)


def row_sql_fields() -> dict[str, str]:
    """What both backends' ``insert_events`` name of the row, derived from ``OutboxRow``: the
    columns it fills by name (``{row_columns}``), their values (``{row_values}``), and the
    list of its fields (``{row_fields}``)."""
    return {
        "row_columns": ", ".join(COLUMN_FIELDS),
        "row_values": ", ".join(f"e.{name}" for name in COLUMN_FIELDS),
        "row_fields": ", ".join(ROW_FIELDS),
    }


def integer_fields() -> frozenset[str]:
    """The fields of ``OutboxRow`` that hold integers (the others hold text)."""
    return frozenset(name for name, kind in get_type_hints(OutboxRow).items() if kind is int)


def insert_rows(shells: Sequence[EventShell], events: Sequence[NewEvent]) -> list[OutboxRow]:
    """The rows of the outbox INSERT, shells first."""
    rows = [
        OutboxRow(e.id, EVENT_NAME, e.head, e.tail, e.created_at, None, None, e.id, *_trace(e))
        for e in shells
    ]
    rows += [
        OutboxRow(
            e.id,
            e.name,
            e.payload,
            None,
            e.created_at,
            e.env,
            e.replay_of,
            e.inngest_id,
            *_trace(e),
        )
        for e in events
    ]
    return rows


def _trace(event: EventShell | NewEvent) -> tuple[str | None, str | None]:
    trace: TraceContext | None = event.trace
    return (None, None) if trace is None else (trace.traceparent, trace.tracestate)


def as_json(rows: Sequence[OutboxRow]) -> str:
    """The rows as SQLite's ``insert_events`` takes them: one JSON array of arrays, each of the
    fields in order (SQLite finds an array's items faster than an object's keys: measured,
    the INSERT of 30 rows of 1 KB took 215 us so and 255 us with objects)."""
    return dumps([tuple(row) for row in rows])


def as_arrays(rows: Sequence[OutboxRow]) -> list[list[Any]]:
    """The rows as PostgreSQL's ``insert_events`` takes them: one array per field, in order."""
    if not rows:
        return [[] for _ in ROW_FIELDS]
    return [list(column) for column in zip(*rows, strict=True)]


def new_complete_events(shells: Sequence[EventShell], inserted: Sequence[str]) -> int:
    """How many complete events an INSERT that stored the ids ``inserted`` took (the others
    repeated an id already stored); ``DatabaseUnavailable`` if a shell was not stored: its id,
    drawn at random, was taken, and the caller must not answer as if it were written."""
    stored = set(inserted)
    if any(shell.id not in stored for shell in shells):
        raise DatabaseUnavailable("a new event's id was taken; the batch was not written")
    return len(stored) - len(shells)
