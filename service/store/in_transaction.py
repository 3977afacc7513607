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

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.config.settings import configured_schema, schema_name
from service.events.ids import now_ms
from service.events.payload import dumps
from service.events.validation import EventRefused, env_error, event_error, size_error
from service.store.backends.app_writes import app_writes_of
from service.store.backends.base import AppEvent
from service.telemetry import write_span

__all__ = ["EventRefused", "send_event"]


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
    ``DATABASE_SCHEMA`` as the service reads it, else ``public``).

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
    writes = app_writes_of(connection)
    written_at = now_ms()
    inngest_id = writes.inngest_id(connection, written_at)
    # As the Event API stores {name, data, user, id, ts}: in that order, user only if given.
    event: dict[str, Any] = {"name": name, "data": {} if data is None else _plain(data)}
    if user is not None:
        event["user"] = _plain(user)
    event |= {"id": id or inngest_id, "ts": ts or written_at}
    problem = event_error(event) or (env_error(env, "env") if env is not None else None)
    if problem is not None:
        raise EventRefused(problem)
    payload = dumps(event)
    where = schema_name(schema) if schema is not None else configured_schema()
    limit = await writes.size_limit(connection, where)
    problem = size_error(payload, limit)
    if problem is not None:
        raise EventRefused(problem)
    with write_span("send_event", 1):
        return await writes.write(
            connection,
            AppEvent(event, payload, id or None, env, inngest_id, written_at, where, limit),
        )


def _plain(value: object) -> object:
    """A mapping as the plain dict JSON is made of; anything else as it is (to be refused)."""
    return dict(value) if isinstance(value, Mapping) else value
