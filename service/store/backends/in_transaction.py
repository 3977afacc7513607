"""``send_event``: an event written in the app's own transaction, from Python.

The app hands over its SQLAlchemy connection (or session) inside a transaction; the event's row
commits or rolls back with the app's own writes. On PostgreSQL the helper calls the schema's
``send_event`` function (which a relay's wake-up goes with); on SQLite, which has no stored
functions, it inserts the same row into the same file with the backend's outbox INSERT. The
event is checked first with the Event API's rules, so a bad one raises ``EventRefused`` before
any statement: the app's transaction goes on. The helper never begins, commits or retries.

It imports neither the HTTP server nor the relay: an app's process loads the store alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.config import DEFAULT_EVENT_MAX_BYTES
from service.config.settings import schema_name
from service.events.ids import now_ms
from service.events.inngest_ids import RunningIds
from service.events.payload import NewEvent, dumps
from service.events.validation import env_error, event_error, size_error
from service.store.backends.postgres_sql import quoted
from service.store.backends.sqlite_sql import SQL, insert_argument
from service.telemetry import write_span

__all__ = ["EventRefused", "send_event"]

# Where a SQLite connection keeps the run of Inngest ids of the events sent on it.
RUNS = "service.inngest_ids"
# On PostgreSQL the function makes the Inngest id: the event is checked here with a stand-in of
# its length, so that the size the rules measure is the size stored.
PLACEHOLDER_ID = "0" * 26


class EventRefused(ValueError):
    """The event breaks one of the Event API's rules; the message says which (its text)."""


async def send_event(
    conn: AsyncConnection | AsyncSession,
    name: str,
    data: Mapping[str, Any] | None = None,
    *,
    user: Mapping[str, Any] | None = None,
    id: str | None = None,  # the event's own field, named as the SQL function names it
    ts: int | None = None,
    env: str | None = None,
    schema: str | None = None,
) -> str:
    """Write the event ``name`` (``data``, ``user``, ``id``, ``ts`` in ms, Inngest environment
    ``env``) to the outbox in the transaction ``conn`` is in; return its id. Without an ``id``
    of its own, that id is a ULID, the one Inngest files the event under; with one, Inngest's
    id is the outbox's to know (``service outbox show``). A repeated ``id`` writes nothing and
    returns it. ``schema``: where the service's tables are on PostgreSQL (default
    ``DATABASE_SCHEMA``, else ``public``).

    Raises ``EventRefused`` for an event the Event API would refuse, ``TypeError`` for a
    connection of another kind, and ``RuntimeError`` when ``conn`` is not inside a
    transaction."""
    if not isinstance(conn, AsyncConnection | AsyncSession):
        raise TypeError(
            "send_event takes SQLAlchemy's AsyncConnection or AsyncSession (create_async_engine"
            f" with asyncpg or aiosqlite), not {type(conn).__module__}.{type(conn).__qualname__}"
        )
    if not conn.in_transaction():
        raise RuntimeError(
            "send_event needs a connection inside a transaction: call it between the app's "
            "begin() and commit(), so that the event commits or rolls back with them"
        )
    connection = await conn.connection() if isinstance(conn, AsyncSession) else conn
    postgresql = connection.dialect.name == "postgresql"
    written_at = now_ms()
    if postgresql:
        inngest_id = PLACEHOLDER_ID
    else:
        # The events of one connection make runs (its pool keeps it for the next transactions).
        inngest_id = connection.info.setdefault(RUNS, RunningIds()).take(1, written_at)[0]
    event_id = id or inngest_id
    # As the Event API stores {name, data, user, id, ts}: in that order, user only if given.
    event: dict[str, Any] = {"name": name, "data": {} if data is None else _plain(data)}
    if user is not None:
        event["user"] = _plain(user)
    event |= {"id": event_id, "ts": ts or written_at}
    problem = event_error(event) or (env_error(env, "env") if env is not None else None)
    payload = dumps(event)
    problem = problem or size_error(payload, DEFAULT_EVENT_MAX_BYTES)
    if problem is not None:
        raise EventRefused(problem)
    with write_span("send_event", 1):
        if postgresql:
            return await _call_the_function(connection, event, id or None, env, schema)
        row = NewEvent(event_id, name, written_at, payload, env=env, inngest_id=inngest_id)
        await connection.exec_driver_sql(SQL["insert_events"], insert_argument([], [row]))
    return event_id


def _plain(value: object) -> object:
    """A mapping as the plain dict JSON is made of; anything else as it is (to be refused)."""
    return dict(value) if isinstance(value, Mapping) else value


async def _call_the_function(
    conn: AsyncConnection,
    event: dict[str, Any],
    own_id: str | None,
    env: str | None,
    schema: str | None,
) -> str:
    """Call ``send_event``; without an ``own_id`` the event's id is the Inngest id the
    function makes. Return the event's id."""
    where = quoted(schema_name(schema or os.environ.get("DATABASE_SCHEMA") or "public"))
    user = event.get("user")
    event_id = await conn.scalar(
        text(
            f"SELECT {where}.send_event(:name, CAST(:data AS jsonb), CAST(:user AS jsonb),"
            " :id, :ts, :env)"
        ),
        {
            "name": event["name"],
            "data": dumps(event["data"]),
            "user": None if user is None else dumps(user),
            "id": own_id,
            "ts": event["ts"],
            "env": env,
        },
    )
    return str(event_id)
