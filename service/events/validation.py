"""Inngest's rules for an event, with its server's texts, and the event as the outbox then
stores it.

The texts are those of Inngest's server where it has one (empty and reserved names,
timestamps); type errors, which its server reports as Go's JSON decoding errors, get a
sentence of their own. An accepted event is stored as sent (``v``, ``user``, ``meta`` and
unknown fields kept), with ``ts`` set to the receive time and ``data`` to ``{}`` when missing,
and ``id`` set to the id answered for it when the client gave none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.events.payload import dumps

__all__ = [
    "EARLIEST_TS",
    "INTERNAL_PREFIX",
    "LATEST_TS",
    "MAX_ENV_LENGTH",
    "MAX_NAME_LENGTH",
    "EventRefused",
    "env_error",
    "event_error",
    "size_error",
    "stored_payload",
]

MAX_NAME_LENGTH = 256  # the outbox's name column
MAX_ENV_LENGTH = 256  # the outbox's env column
INTERNAL_PREFIX = "inngest/"
EARLIEST_TS = int(datetime(1980, 1, 1, tzinfo=UTC).timestamp() * 1000)
LATEST_TS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
# The fields Inngest types; any other field is the client's and is kept as sent.
OBJECT_FIELDS = ("data", "user")
STRING_FIELDS = ("id", "v")


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


class EventRefused(ValueError):
    """The event breaks one of the Event API's rules; the message says which (its text)."""


def size_error(payload: str, max_bytes: int) -> str | None:
    """Why Inngest would refuse an event stored as ``payload`` for its size, or None."""
    size = len(payload.encode())
    if size > max_bytes:
        return f"Event is over the max size: Max {max_bytes} bytes / Size {size} bytes"
    return None


def env_error(env: str, field: str) -> str | None:
    """Why ``env`` cannot name an Inngest environment (as ``field`` gave it), or None."""
    if not 0 < len(env) <= MAX_ENV_LENGTH or not all(" " <= c <= "~" for c in env):
        return f"{field} must be 1 to {MAX_ENV_LENGTH} printable ASCII characters"
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
