"""The console's typed keys on the application and on each request."""

from __future__ import annotations

from aiohttp import web

from service.http.console.overview import OverviewFigures
from service.http.console.sessions import ConsoleSession, SessionCookies, SignInLimiter

COOKIES = web.AppKey("console_cookies", SessionCookies)
LIMITER = web.AppKey("console_limiter", SignInLimiter)
FIGURES = web.AppKey("console_figures", OverviewFigures)
# Digests of tokens the process made itself (development's printed token).
EXTRA_DIGESTS = web.AppKey("console_extra_digests", tuple)
# On a request: the signed-in operator, and whether their cookie is to be set on the answer.
CURRENT = "console_session"
MINTED = "console_minted"
# Routes served without a session.
PUBLIC_ROUTES = frozenset({"console.static", "console.sign_in_form", "console.sign_in"})


def operator(request: web.Request) -> ConsoleSession:
    """The operator the guard let in."""
    session: ConsoleSession = request[CURRENT]
    return session
