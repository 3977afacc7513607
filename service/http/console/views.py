"""The console's pages: the overview (and its live fragment and JSON), the event list, one
event, the app settings, and sign-in. Each reads through the store's own queries, the same
ones ``service outbox`` uses."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict
from typing import Any

from aiohttp import web

from service.errors import InvalidInput
from service.events.ids import now_ms
from service.http.console.event_filters import STATES, FilterForm
from service.http.console.keys import COOKIES, EXTRA_DIGESTS, FIGURES, LIMITER, operator
from service.http.console.pages import render
from service.http.console.sessions import ConsoleSession, operator_for_token
from service.http.keys import ENGINE, SETTINGS
from service.store import (
    attempt_history,
    outbox_admin,
)
from service.store.engine import reading
from service.store.event_filter import Cursor
from service.store.settings_store import read_with_time
from service.store.statuses import DEAD, PENDING

__all__ = [
    "event_page",
    "events_page",
    "overview",
    "overview_json",
    "overview_live",
    "settings_page",
    "sign_in",
    "sign_in_form",
    "sign_out",
]

log = logging.getLogger(__name__)

PAGE_ROWS = 50
PREVIEW_CHARS = 400  # the envelope's id, name and ts, then the start of its data


# -- sign-in --------------------------------------------------------------------------------


def _sign_in_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    console = request.app[SETTINGS].console
    context = {
        "message": message,
        "token_sign_in": True,
        "session_sign_in": console.by_session,
    }
    return render("sign_in.html", context, status=status)


async def sign_in_form(request: web.Request) -> web.Response:
    return _sign_in_page(request)


async def sign_in(request: web.Request) -> web.Response:
    """Exchange an operator token for the console's session cookie (rate-limited)."""
    address = request.remote or "unknown"
    wait = request.app[LIMITER].wait_for(address)
    if wait:
        log.warning(
            "console: sign-in attempts from %s over the limit",
            address,
            extra={"action": "console.sign_in_limited"},
        )
        response = _sign_in_page(request, "Too many attempts: wait a minute.", 429)
        response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return response
    form = await request.post()
    token = form.get("token")
    who = None
    if isinstance(token, str):
        console = request.app[SETTINGS].console
        who = operator_for_token(token.strip(), console, request.app[EXTRA_DIGESTS])
    if who is None:
        log.warning(
            "console: sign-in with an unknown token from %s",
            address,
            extra={"action": "console.sign_in_refused"},
        )
        return _sign_in_page(request, "That token is not an operator's.", 401)
    session = ConsoleSession.start(who, "token")
    log.info(
        "console: %s signed in from %s",
        who,
        address,
        extra={"action": "console.signed_in", "operator": who},
    )
    response = web.Response(status=303, headers={"Location": "/console"})
    request.app[COOKIES].set(response, session)
    return response


async def sign_out(request: web.Request) -> web.Response:
    who = operator(request).who
    log.info("console: %s signed out", who, extra={"action": "console.signed_out", "operator": who})
    response = web.Response(status=303, headers={"Location": "/console/sign-in"})
    request.app[COOKIES].clear(response)
    return response


# -- the overview ---------------------------------------------------------------------------


async def _overview_context(request: web.Request) -> dict[str, Any]:
    figures = await request.app[FIGURES].get()
    return {"session": operator(request), **vars(figures)}


async def overview(request: web.Request) -> web.Response:
    return render("overview.html", await _overview_context(request), section="overview")


async def overview_live(request: web.Request) -> web.Response:
    """The overview's figures alone, which the page fetches again every few seconds."""
    return render("overview_live.html", await _overview_context(request))


async def overview_json(request: web.Request) -> web.Response:
    """The overview's figures for scripts: counts, delivery's state, leases, the last hour."""
    context = await _overview_context(request)
    stats = context["stats"]
    document = {
        "at": stats.at,
        "counts": {state: count for _label, state, count in context["counts"]},
        "oldest_pending_age_seconds": stats.oldest_pending_age,
        "delivery": asdict(context["state"]),
        "leases": [asdict(lease) for lease in context["leases"]],
        "minutes": [asdict(minute) for minute in context["minutes"]],
        "top_errors": [{"error": e, "events": n} for e, n in stats.top_errors],
    }
    return web.json_response(document)


# -- events ---------------------------------------------------------------------------------


async def events_page(request: web.Request) -> web.Response:
    """Events newest first, filtered, a page at a time from a cursor."""
    form = FilterForm.read(request.query)
    after = None
    if raw_after := request.query.get("after"):
        try:
            after = Cursor.parse(raw_after)
        except InvalidInput as exc:
            form.problems.append(str(exc))
    rows: list[outbox_admin.EventRow] = []
    if not form.problems:
        rows = await outbox_admin.list_events(
            request.app[ENGINE], form.where, PAGE_ROWS + 1, after, preview_chars=PREVIEW_CHARS
        )
    more, rows = len(rows) > PAGE_ROWS, rows[:PAGE_ROWS]
    next_page = ""
    if more:
        next_page = form.query(Cursor(rows[-1].created_at, rows[-1].seq))
    context = {
        "session": operator(request),
        "form": form.values,
        "states": STATES,
        "problems": form.problems,
        "rows": rows,
        "next_page": next_page,
        "query": form.query(),
        "replayable": form.values["error"] and form.where.status in (None, DEAD),
    }
    status = 400 if form.problems else 200
    return render("events.html", context, status=status, section="events")


async def event_page(request: web.Request) -> web.Response:
    """One event whole: its fields, attempts, times and payload (pretty-printed)."""
    row = await outbox_admin.get_event(request.app[ENGINE], request.match_info["event_id"])
    payload = row.payload or ""
    with contextlib.suppress(ValueError):
        payload = json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    context = {
        "session": operator(request),
        "row": row,
        "payload": payload,
        "payload_bytes": len((row.payload or "").encode()),
        "leased": row.status == PENDING and (row.locked_until or 0) > now_ms(),
        "attempts": await attempt_history.attempts_of(request.app[ENGINE], row.seq),
    }
    return render("event.html", context, section="events")


async def settings_page(request: web.Request) -> web.Response:
    async with reading(request.app[ENGINE]) as conn:
        document, updated_at = await read_with_time(conn)
    context = {
        "session": operator(request),
        "document": json.dumps(document, indent=2, ensure_ascii=False),
        "updated_at": updated_at,
    }
    return render("settings.html", context, section="settings")
