"""The outbox INSERT's rows and the settings subquery that both backends' INSERT reads.

Free of SQLAlchemy: the SQLite writer process builds its statement from these too.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.errors import DatabaseUnavailable
from service.events.payload import EVENT_NAME, EventShell, NewEvent
from service.events.trace import TraceContext

__all__ = [
    "APP_SETTINGS_ROW",
    "EMPTY_DOCUMENT",
    "INSERT_COLUMNS",
    "InsertRow",
    "insert_rows",
    "new_complete_events",
    "settings_document",
]

# The app settings document is the one row of its table, ``{}`` until set.
APP_SETTINGS_ROW = 1
EMPTY_DOCUMENT = "{}"

# One row of the outbox INSERT: id, name, head, tail, created_at, env, replay_of, inngest_id,
# traceparent, tracestate. The payload is ``head`` when ``tail`` is None (a complete event),
# else ``head + settings + tail`` (an ``openapi/app.sync`` shell whose data is the settings
# document the statement reads).
InsertRow = tuple[
    str, str, str, str | None, int, str | None, str | None, str | None, str | None, str | None
]
INSERT_COLUMNS = 10


def insert_rows(shells: Sequence[EventShell], events: Sequence[NewEvent]) -> list[InsertRow]:
    """The rows of the outbox INSERT, shells first."""
    rows: list[InsertRow] = [
        (e.id, EVENT_NAME, e.head, e.tail, e.created_at, None, None, e.id, *_trace(e.trace))
        for e in shells
    ]
    rows += [
        (
            e.id,
            e.name,
            e.payload,
            None,
            e.created_at,
            e.env,
            e.replay_of,
            e.inngest_id,
            *_trace(e.trace),
        )
        for e in events
    ]
    return rows


def _trace(trace: TraceContext | None) -> tuple[str | None, str | None]:
    return (None, None) if trace is None else (trace.traceparent, trace.tracestate)


def new_complete_events(shells: Sequence[EventShell], inserted: Sequence[str]) -> int:
    """How many complete events an INSERT that stored the ids ``inserted`` took (the others
    repeated an id already stored); ``DatabaseUnavailable`` if a shell was not stored: its id,
    drawn at random, was taken, and the caller must not answer as if it were written."""
    stored = set(inserted)
    if any(shell.id not in stored for shell in shells):
        raise DatabaseUnavailable("a new event's id was taken; the batch was not written")
    return len(stored) - len(shells)


def settings_document(app_settings: str) -> str:
    """The settings document as one row of one column ``data``, read once per statement."""
    return (
        f"(SELECT coalesce((SELECT document FROM {app_settings} WHERE id = {APP_SETTINGS_ROW}),"
        f" '{EMPTY_DOCUMENT}') AS data) AS document"
    )
