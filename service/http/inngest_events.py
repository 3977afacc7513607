"""The events of an Event API request: read, checked with Inngest's rules and texts
(``service.events.validation``), and made into the rows the outbox stores.

The whole batch is checked before anything is stored: the JS SDK sends a refused batch five
times, so a batch is taken whole or not at all (Inngest's own server keeps the events before
the first bad one). A refusal names the event's 1-based position: ``event 2: event name is
empty``. An event the client gave no ``id`` is stored with the id answered for it (Inngest
then drops the relay's own retries as duplicates); a client's own ``id`` is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.events.payload import NewEvent
from service.events.trace import TraceContext
from service.events.validation import env_error, event_error, size_error, stored_payload
from service.json_reader import MalformedJson, parse_json

MAX_EVENTS = 5000  # per request, as at Inngest
NOT_EVENTS = "Request body must contain an event object or an array of event objects"


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


def env_header(value: str | None) -> str | None:
    """The ``x-inngest-env`` a request names, if any; ``Refused`` when it cannot be one."""
    if value is None or not value.strip():
        return None
    env = value.strip()
    if (error := env_error(env, "x-inngest-env")) is not None:
        raise Refused(400, error)
    return env


def outbox_rows(
    events: list[dict[str, Any]],
    ids: Sequence[str],
    received_at: int,
    env: str | None,
    max_event_bytes: int,
    trace: TraceContext | None = None,
) -> list[NewEvent]:
    """The rows of a whole batch, each event checked; ``Refused`` naming the first bad one.
    ``ids`` are the ids Inngest will give the events, and the rows' own."""
    for position, event in enumerate(events, 1):
        error = event_error(event)
        if error is not None:
            raise Refused(400, f"event {position}: {error}")
    rows = []
    for position, (event, event_id) in enumerate(zip(events, ids, strict=True), 1):
        payload = stored_payload(event, event_id, received_at)
        if (error := size_error(payload, max_event_bytes)) is not None:
            raise Refused(400, f"event {position}: {error}")
        rows.append(
            NewEvent(
                event_id,
                event["name"],
                received_at,
                payload,
                env=env,
                inngest_id=event_id,
                trace=trace,
            )
        )
    return rows
