"""``POST /e/{key}``: Inngest's Event API, served, so that an app's own SDK sends every event
through the outbox (``INNGEST_EVENT_API_BASE_URL=http://service:8080``).

Every answer has the Event API's JSON shape, ``{"ids": [...], "status": N}`` with an
``"error"`` only on failures, because the SDKs read nothing else: the JS SDK counts a send as
done only for ``status: 200`` with no truthy ``error`` (``"error": null`` fails it), and the
Python SDK fails on any ``error`` key (even ``""``) and retries only network errors and 5xx.
So a success never carries ``error``, and a database that cannot take the write is a 503
(never 429). The answer comes once the batch's transaction has committed, through the same
group commit as ``POST /api``.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from service.config import EVENT_KEY_PATTERN, EventApiSettings
from service.errors import DatabaseUnavailable
from service.events.ids import now_ms
from service.events.inngest_ids import SEED_HEADER, event_ids
from service.events.trace import trace_context
from service.http.auth import check_token
from service.http.inngest_events import Refused, env_header, outbox_rows, read_events
from service.http.keys import SETTINGS, WRITER
from service.relay.inngest_client import ENV_HEADER
from service.telemetry import write_span

log = logging.getLogger(__name__)

OFF = "The Event API is off: the service takes events only with EVENT_API_KEYS set"
UNAVAILABLE = "The database cannot take the events now; retry later (the ids will not change)"


def answer(status: int, ids: list[str] | None = None, error: str | None = None) -> web.Response:
    """An Event API answer: ``ids`` and ``status``, and ``error`` only when there is one."""
    if error is None:
        # Formatted by hand: the ids are ULIDs, and json.dumps costs more than the rest of it.
        quoted = ", ".join(f'"{event_id}"' for event_id in ids or [])
        body = f'{{"ids": [{quoted}], "status": {status}}}'
    else:
        body = json.dumps({"ids": ids or [], "status": status, "error": error})
    headers = {"Retry-After": "1"} if status == 503 else None
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def key_error(settings: EventApiSettings, production: bool, key: str) -> Refused | None:
    """Why ``key`` may not send events, or None. Without EVENT_API_KEYS any key that could be
    one goes in development (as at Inngest's dev server), and the route is off in production."""
    if not settings.keys:
        if production:
            return Refused(404, OFF)
        return None if EVENT_KEY_PATTERN.fullmatch(key) else Refused(401, "Event key not found")
    if check_token(key, settings.keys):
        return None
    return Refused(401, "Event key not found")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (``Refused`` 413 beyond)."""
    too_large = Refused(413, f"The request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks, size = [], 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def post_events(request: web.Request) -> web.Response:
    """Store a batch of an app's events in the outbox; answer their ids once committed."""
    received_at = now_ms()
    settings = request.app[SETTINGS]
    limits = settings.event_api
    try:
        refusal = key_error(limits, settings.is_production, request.match_info["key"])
        if refusal is not None:
            raise refusal
        env = env_header(request.headers.get(ENV_HEADER))
        events = read_events(await read_body(request, limits.max_body_bytes))
        writer = request.app[WRITER]
        ids = event_ids(request.headers.get(SEED_HEADER), len(events), received_at, writer.ids)
        trace = trace_context(request.headers)
        rows = outbox_rows(events, ids, received_at, env, limits.max_event_bytes, trace)
    except Refused as refused:
        return answer(refused.status, error=refused.error)
    if rows:
        try:
            with write_span("POST /e/{key}", len(rows), trace):
                await writer.submit_events(rows)
        except DatabaseUnavailable as exc:
            log.error("events not stored: %s", exc, extra={"action": "http.db_unavailable"})
            return answer(503, error=UNAVAILABLE)
    return answer(200, ids)


def announce(settings: EventApiSettings, production: bool) -> None:
    """Say at start-up whom ``POST /e/{key}`` takes events from."""
    if settings.keys:
        log.info(
            "the Event API takes events at POST /e/{key} with %d keys",
            len(settings.keys),
            extra={"action": "event_api.on"},
        )
    elif production:
        log.warning(
            "the Event API (POST /e/{key}) is off: set EVENT_API_KEYS to take apps' events",
            extra={"action": "event_api.off"},
        )
    else:
        log.info(
            "the Event API (POST /e/{key}) takes any key (development, EVENT_API_KEYS unset)",
            extra={"action": "event_api.any_key"},
        )
