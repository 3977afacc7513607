"""Adding the console to an application, or saying in the log why it is off."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings, token_digest
from service.http.console import actions, views
from service.http.console.guard import console_guard
from service.http.console.keys import COOKIES, EXTRA_DIGESTS, FIGURES, LIMITER
from service.http.console.overview import OverviewFigures
from service.http.console.sessions import SessionCookies, SignInLimiter
from service.http.keys import ENGINE, SETTINGS

__all__ = ["install"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


def install(app: web.Application, settings: Settings, *, where: str) -> bool:
    """Serve the console on ``app`` (``where`` names it in the log) if the settings allow
    anyone to sign in; in development with no one named, with a token made for this process
    and printed in the log. False (and the reason logged) when it stays off."""
    console = settings.console
    extra: tuple[str, ...] = ()
    if not console.configured:
        if settings.is_production:
            log.info(
                "console off on %s: CONSOLE_TOKENS and CONSOLE_ALLOWED_EMAILS name no one who"
                " may sign in",
                where,
                extra={"action": "console.off"},
            )
            return False
        token = secrets.token_urlsafe(24)
        extra = (f"developer={token_digest(token)}",)
        log.info(
            "console on %s at /console: sign in with the development token %s (set"
            " CONSOLE_TOKENS to choose operators' tokens)",
            where,
            token,
            extra={"action": "console.development_token"},
        )
    app.middlewares.append(console_guard)
    app[EXTRA_DIGESTS] = extra
    app[LIMITER] = SignInLimiter(console.sign_in_attempts)
    app.on_startup.append(_start)
    _add_routes(app.router)
    return True


async def _start(app: web.Application) -> None:
    # At start-up: in development the session secret is read from (or made in) var/, and the
    # database's engine is made by then.
    app[COOKIES] = SessionCookies(app[SETTINGS])
    app[FIGURES] = OverviewFigures(app[ENGINE])


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_static("/console/static", STATIC, name="console.static")
    router.add_get("/console/sign-in", views.sign_in_form, name="console.sign_in_form")
    router.add_post("/console/sign-in", views.sign_in, name="console.sign_in")
    router.add_post("/console/sign-out", views.sign_out, name="console.sign_out")
    router.add_get("/console", views.overview, name="console.overview")
    router.add_get("/console/overview/live", views.overview_live, name="console.live")
    router.add_get("/console/overview.json", views.overview_json, name="console.json")
    router.add_get("/console/events", views.events_page, name="console.events")
    router.add_get("/console/events/{event_id}", views.event_page, name="console.event")
    router.add_get("/console/settings", views.settings_page, name="console.settings")
    for path, handler, name in (
        ("/console/events/{event_id}/replay", actions.replay_event, "replay_event"),
        ("/console/events/{event_id}/mark-dead", actions.mark_dead, "mark_dead"),
        ("/console/replay", actions.replay_filtered, "replay"),
        ("/console/purge", actions.purge, "purge"),
        ("/console/pause", actions.pause, "pause"),
        ("/console/resume", actions.resume, "resume"),
    ):
        router.add_get(path, handler, name=f"console.{name}_confirm")
        router.add_post(path, handler, name=f"console.{name}")


def on_relay_port(settings: Settings) -> Callable[[web.Application, AsyncEngine], None]:
    """What adds the console to a relay's metrics port (``CONSOLE_ON_RELAY``)."""

    def extend(app: web.Application, engine: AsyncEngine) -> None:
        app[SETTINGS], app[ENGINE] = settings, engine
        install(app, settings, where=f"the relay's port {settings.relay.metrics_port}")

    return extend
