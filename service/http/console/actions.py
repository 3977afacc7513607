"""The console's repairs, each a confirmation page (GET: what will happen, and to how many)
and the action itself (POST, with the session's CSRF token), followed by a line of the audit
log that names the operator. Each is the command line's own implementation (``outbox_admin``,
``delivery_state``), not a second copy of its rules."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aiohttp import web

from service.events.ids import now_ms
from service.http.console.event_filters import FilterForm
from service.http.console.keys import FIGURES, operator
from service.http.console.pages import path_part, render
from service.http.keys import ENGINE
from service.store import delivery_state, outbox_admin
from service.store.outbox_admin import ReplayAction, ReplayResult
from service.store.statuses import DEAD, PENDING
from service.timefmt import iso, parse_moment

__all__ = [
    "mark_dead",
    "pause",
    "purge",
    "replay_event",
    "replay_filtered",
    "resume",
]

log = logging.getLogger("service.http.console.audit")

REASON_MAX = 500


def audit(request: web.Request, action: str, text: str, **fields: Any) -> None:
    """The audit log's line of an action: who did what, to how many. The overview's figures
    are forgotten too, so that the action's effect shows on it at once."""
    request.app[FIGURES].forget()
    who = operator(request).who
    log.warning(
        "console: %s %s",
        who,
        text,
        extra={"action": f"console.{action}", "operator": who, **fields},
    )


def _confirm(
    request: web.Request,
    heading: str,
    text: str,
    button: str,
    *,
    back: str,
    hidden: Sequence[tuple[str, str]] = (),
    allowed: bool = True,
    reason: bool = False,
) -> web.Response:
    context = {
        "session": operator(request),
        "heading": heading,
        "text": text,
        "button": button,
        "action": request.path,
        "hidden": list(hidden),
        "allowed": allowed,
        "reason": reason,
        "back": back,
    }
    return render("confirm.html", context)


def _done(
    request: web.Request, heading: str, text: str, back: str, tone: str = "good"
) -> web.Response:
    context = {
        "session": operator(request),
        "heading": heading,
        "text": text,
        "tone": tone,
        "back": back,
    }
    return render("message.html", context)


def _event_link(event_id: str) -> str:
    return "/console/events/" + path_part(event_id)


# -- one event ------------------------------------------------------------------------------


def _replay_text(result: ReplayResult) -> str:
    match result.action:
        case ReplayAction.REQUEUED:
            return "It is pending again under its own id, due now."
        case ReplayAction.RESENT:
            return f"It was sent again as a new event, {result.new_id}."
        case ReplayAction.ALREADY_PENDING:
            return "It is pending already: nothing changed."
        case _:
            return "There is no such event."


async def replay_event(request: web.Request) -> web.Response:
    """Replay one dead or delivered event (a delivered one is sent as a new event)."""
    engine = request.app[ENGINE]
    event_id = request.match_info["event_id"]
    back = _event_link(event_id)
    if request.method == "GET":
        row = await outbox_admin.get_event(engine, event_id)
        if row.status == PENDING:
            text = "This event is pending: it is queued already."
            return _confirm(request, "Replay", text, "Replay", back=back, allowed=False)
        what = (
            "It goes back to pending under its own id, due now."
            if row.status == DEAD
            else "It is sent again as a new event (new ids, replay_of naming this one), so "
            "that Inngest runs its functions again."
        )
        text = f"Replay {row.status} event {row.id} ({row.name})? {what}"
        return _confirm(request, "Replay this event?", text, "Replay", back=back)
    results = [r async for batch in outbox_admin.replay_ids(engine, [event_id]) for r in batch]
    (result,) = results
    audit(request, "replay", f"replayed {event_id}: {result.action.value}", event_id=event_id)
    if result.action is ReplayAction.RESENT and result.new_id is not None:
        back = _event_link(result.new_id)
    done = result.action in (ReplayAction.REQUEUED, ReplayAction.RESENT)
    return _done(request, "Replayed" if done else "Not replayed", _replay_text(result), back)


async def mark_dead(request: web.Request) -> web.Response:
    """Give up on one pending event: dead, with the operator's reason as its last error."""
    engine = request.app[ENGINE]
    event_id = request.match_info["event_id"]
    back = _event_link(event_id)
    if request.method == "GET":
        row = await outbox_admin.get_event(engine, event_id)
        if row.status != PENDING:
            text = f"This event is {row.status}: only pending events can be marked dead."
            return _confirm(request, "Mark dead", text, "Mark dead", back=back, allowed=False)
        text = (
            f"Mark pending event {row.id} ({row.name}) dead? The relays stop trying it; it can "
            "be replayed later."
        )
        return _confirm(request, "Mark this event dead?", text, "Mark dead", back=back, reason=True)
    form = await request.post()
    reason = str(form.get("reason") or "").strip()[:REASON_MAX] or "marked dead in the console"
    who = operator(request).who
    buried = await outbox_admin.mark_dead(engine, [event_id], f"{reason} ({who})")
    audit(request, "mark_dead", f"marked {event_id} dead: {reason}", event_id=event_id)
    if not buried:
        return _done(request, "Not changed", "The event is no longer pending.", back, "warn")
    return _done(request, "Marked dead", "The event is dead; the relays leave it.", back)


# -- many events ----------------------------------------------------------------------------


async def replay_filtered(request: web.Request) -> web.Response:
    """Replay every dead event the event list's filters match, counted first."""
    engine = request.app[ENGINE]
    given = request.query if request.method == "GET" else await request.post()
    form = FilterForm.read({k: str(v) for k, v in given.items()})
    back = "/console/events?" + form.query()
    if form.problems:
        text = " ".join(form.problems)
        return _confirm(request, "Replay", text, "Replay", back=back, allowed=False)
    where = replace(form.where, status=DEAD, failed=False, leased_at=None)
    if request.method == "GET":
        count = await outbox_admin.count_events(engine, where)
        text = (
            f"Replay {count:,} dead event{'s' if count != 1 else ''} matching these filters? "
            "Each goes back to pending under its own id, due now."
        )
        return _confirm(
            request,
            "Replay these events?",
            text,
            f"Replay {count:,}",
            back=back,
            hidden=form.hidden(),
            allowed=count > 0,
        )
    replayed = 0
    async for batch in outbox_admin.replay_dead(engine, where):
        replayed += len(batch)
    audit(
        request,
        "replay_filtered",
        f"replayed {replayed} dead events ({form.query() or 'all'})",
        count=replayed,
        filters=form.query(),
    )
    return _done(request, "Replayed", f"{replayed:,} dead events are pending again.", back)


async def purge(request: web.Request) -> web.Response:
    """Delete dead events that died before a moment (never pending ones), counted first."""
    engine = request.app[ENGINE]
    given = request.query if request.method == "GET" else await request.post()
    raw = str(given.get("before", "")).strip()
    if not raw:
        text = (
            "Purge dead events that died before a moment: give it as an ISO 8601 time "
            "(2026-12-01T00:00Z) or an age (7d)."
        )
        return _purge_form(request, text)
    try:
        cutoff = parse_moment(raw, now_ms())
    except ValueError as exc:
        return _purge_form(request, str(exc))
    when = iso(cutoff) or raw
    if request.method == "GET":
        count = await outbox_admin.count_completed_before(engine, DEAD, cutoff)
        plural = "s" if count != 1 else ""
        text = f"Delete {count:,} dead event{plural} that died before {when}? It cannot be undone."
        return _confirm(
            request,
            "Purge dead events?",
            text,
            f"Delete {count:,}",
            back="/console",
            hidden=[("before", when)],
            allowed=count > 0,
        )
    removed = 0
    async for count in outbox_admin.purge_completed_before(engine, DEAD, cutoff):
        removed += count
    audit(request, "purge", f"purged {removed} dead events before {when}", count=removed)
    return _done(request, "Purged", f"{removed:,} dead events deleted.", "/console")


def _purge_form(request: web.Request, text: str) -> web.Response:
    context = {"session": operator(request), "text": text}
    return render("purge.html", context)


# -- delivery -------------------------------------------------------------------------------


async def pause(request: web.Request) -> web.Response:
    """Stop every relay from claiming events until resumed (events keep being accepted)."""
    if request.method == "GET":
        text = (
            "Pause delivery? Every relay stops sending within a few seconds; events are still "
            "accepted and wait, pending, until delivery is resumed."
        )
        return _confirm(request, "Pause delivery?", text, "Pause", back="/console")
    who = operator(request).who
    changed = await delivery_state.pause(request.app[ENGINE], who, now_ms())
    audit(request, "pause", "paused delivery" if changed else "paused delivery (already paused)")
    return _done(request, "Paused", "Delivery is paused.", "/console", "warn")


async def resume(request: web.Request) -> web.Response:
    if request.method == "GET":
        text = "Resume delivery? The relays are woken and send what waits."
        return _confirm(request, "Resume delivery?", text, "Resume", back="/console")
    changed = await delivery_state.resume(request.app[ENGINE])
    audit(request, "resume", "resumed delivery" if changed else "resumed delivery (not paused)")
    return _done(request, "Resumed", "Delivery is resumed.", "/console")
