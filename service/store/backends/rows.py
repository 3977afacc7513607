"""The one shape of a row the outbox INSERT takes, and the settings document it reads.

``OutboxRow`` is that shape: its fields, by name and in order, are what both backends'
``insert_events`` read (SQLite's as the keys of JSON objects, PostgreSQL's as ``unnest``'s
arrays in field order); a test holds the two statements and the table to it. Free of
SQLAlchemy: the SQLite writer process builds its statement's argument from these too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import DatabaseUnavailable
from service.events.payload import EVENT_NAME, EventShell, NewEvent, dumps
from service.events.trace import TraceContext

__all__ = [
    "APP_SETTINGS_ROW",
    "EMPTY_DOCUMENT",
    "ROW_FIELDS",
    "OutboxRow",
    "as_arrays",
    "as_json",
    "insert_rows",
    "new_complete_events",
]

# The app settings document is the one row of its table, ``{}`` until set (the statements
# that read it say so too).
APP_SETTINGS_ROW = 1
EMPTY_DOCUMENT = "{}"


@dataclass(frozen=True, slots=True)
class OutboxRow:
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


ROW_FIELDS = tuple(field.name for field in dataclasses.fields(OutboxRow))


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
    """The rows as SQLite's ``insert_events`` takes them: one JSON array of objects."""
    return dumps([{name: getattr(row, name) for name in ROW_FIELDS} for row in rows])


def as_arrays(rows: Sequence[OutboxRow]) -> list[list[Any]]:
    """The rows as PostgreSQL's ``insert_events`` takes them: one array per field, in order."""
    return [[getattr(row, name) for row in rows] for name in ROW_FIELDS]


def new_complete_events(shells: Sequence[EventShell], inserted: Sequence[str]) -> int:
    """How many complete events an INSERT that stored the ids ``inserted`` took (the others
    repeated an id already stored); ``DatabaseUnavailable`` if a shell was not stored: its id,
    drawn at random, was taken, and the caller must not answer as if it were written."""
    stored = set(inserted)
    if any(shell.id not in stored for shell in shells):
        raise DatabaseUnavailable("a new event's id was taken; the batch was not written")
    return len(stored) - len(shells)
