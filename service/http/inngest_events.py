"""The events of an Event API request: read, checked with Inngest's rules and texts, and made
into the rows the outbox stores.

The whole batch is checked before anything is stored: the JS SDK sends a refused batch five
times, so a batch is taken whole or not at all (Inngest's own server keeps the events before
the first bad one). A refusal names the event's 1-based position: ``event 2: event name is
empty``. The texts are those of Inngest's server where it has one (empty and reserved names,
timestamps, sizes, counts); type errors, which its server reports as Go's JSON decoding
errors, get a sentence of their own.

An accepted event is stored as sent (``v``, ``user``, ``meta`` and unknown fields kept), with
``ts`` set to the receive time and ``data`` to ``{}`` when missing, and ``id`` set to the id
answered for it when the client gave none (Inngest then drops the relay's own retries as
duplicates); a client's own ``id`` is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from service.json_reader import MalformedJson, parse_json
from service.store.outbox import NewEvent, dumps

MAX_EVENTS = 5000  # per request, as at Inngest
MAX_NAME_LENGTH = 256  # the outbox's name column
MAX_ENV_LENGTH = 256  # the outbox's env column
INTERNAL_PREFIX = "inngest/"
EARLIEST_TS = int(datetime(1980, 1, 1, tzinfo=UTC).timestamp() * 1000)
LATEST_TS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
NOT_EVENTS = "Request body must contain an event object or an array of event objects"
# The fields Inngest types; any other field is the client's and is kept as sent.
OBJECT_FIELDS = ("data", "user")
STRING_FIELDS = ("id", "v")


class Refused(Exception):
    """A request the Event API answers with ``status`` and ``error`` and stores nothing of."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def read_events(raw: bytes) -> list[dict[str, Any]]:
    """The events of a body: a JSON array of event objects, or one event object."""
    if not raw.strip():
        raise Refused(400, NOT_EVENTS)
    try:
        document = parse_json(raw)
    except MalformedJson as exc:
        raise Refused(400, str(exc)) from exc
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise Refused(400, NOT_EVENTS)
    if len(document) > MAX_EVENTS:
        raise Refused(400, f"Cannot have more than {MAX_EVENTS} events in a batch")
    for position, event in enumerate(document, 1):
        if not isinstance(event, dict):
            raise Refused(400, f"event {position}: an event must be a JSON object")
    return document


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def event_error(event: dict[str, Any]) -> str | None:
    """Why Inngest would refuse ``event``, or None (an integral ``ts`` written as a fraction,
    ``1.7e12``, becomes an integer)."""
    name = event.get("name")
    if name is not None and not isinstance(name, str):
        return f"name must be a string, not {_json_type(name)}"
    for field in OBJECT_FIELDS:
        value = event.get(field)
        if value is not None and not isinstance(value, dict):
            return f"{field} must be an object, not {_json_type(value)}"
    for field in STRING_FIELDS:
        value = event.get(field)
        if value is not None and not isinstance(value, str):
            return f"{field} must be a string, not {_json_type(value)}"
    if not name:
        return "event name is empty"
    if name.lower().startswith(INTERNAL_PREFIX):
        return f"event name is reserved for internal use: {name}"
    if len(name) > MAX_NAME_LENGTH:
        return f"event name is longer than {MAX_NAME_LENGTH} characters"
    ts = event.get("ts")
    if isinstance(ts, float) and ts.is_integer():
        # JSON does not tell 1.0 from 1 (JSON Schema neither): the same number of ms.
        ts = event["ts"] = int(ts)
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        return "ts must be an integer: milliseconds since the Unix epoch"
    if ts and ts < EARLIEST_TS:
        return "timestamp is before Jan 1, 1980"
    if ts and ts > LATEST_TS:
        return "timestamp is after Jan 1, 2100"
    return None


def stored_payload(event: dict[str, Any], event_id: str, received_at: int) -> str:
    """The event as the outbox keeps and the relay sends it (see the module's docstring)."""
    if not event.get("ts"):
        event["ts"] = received_at
    if event.get("data") is None:
        event["data"] = {}
    if not event.get("id"):
        event["id"] = event_id
    return dumps(event)


def env_header(value: str | None) -> str | None:
    """The ``x-inngest-env`` a request names, if any; ``Refused`` when it cannot be one."""
    if value is None or not value.strip():
        return None
    env = value.strip()
    if len(env) > MAX_ENV_LENGTH or not all(" " <= c <= "~" for c in env):
        error = f"x-inngest-env must be 1 to {MAX_ENV_LENGTH} printable ASCII characters"
        raise Refused(400, error)
    return env


def outbox_rows(
    events: list[dict[str, Any]],
    ids: Sequence[str],
    received_at: int,
    env: str | None,
    max_event_bytes: int,
) -> list[NewEvent]:
    """The rows of a whole batch, each event checked; ``Refused`` naming the first bad one."""
    for position, event in enumerate(events, 1):
        error = event_error(event)
        if error is not None:
            raise Refused(400, f"event {position}: {error}")
    rows = []
    for position, (event, event_id) in enumerate(zip(events, ids, strict=True), 1):
        payload = stored_payload(event, event_id, received_at)
        size = len(payload.encode())
        if size > max_event_bytes:
            raise Refused(
                400,
                f"event {position}: Event is over the max size: Max {max_event_bytes} bytes"
                f" / Size {size} bytes",
            )
        rows.append(NewEvent(event_id, event["name"], received_at, payload, env=env))
    return rows
