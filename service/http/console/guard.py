"""The console's gate, a middleware on every ``/console`` request: who is signed in (or 401),
same-origin state-changing requests carrying their session's CSRF token (or 403), and the
headers that keep every answer from being framed, sniffed, cached or leaked by referrer.

Only the stylesheet and the script (the package's own files) and the sign-in page are served
without a session; every other page, fragment, JSON answer and action needs one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from service.errors import DatabaseUnavailable, InvalidInput, NotFound
from service.http.app_sessions.lookup import SessionsUnavailable
from service.http.console.keys import COOKIES, CURRENT, MINTED, PUBLIC_ROUTES
from service.http.console.pages import render
from service.http.console.sessions import COOKIE_NAME, ConsoleSession, check_csrf
from service.http.keys import APP_SESSIONS, SETTINGS
from service.http.nextauth import SessionRefused

__all__ = ["PREFIX", "console_guard", "same_origin"]

log = logging.getLogger(__name__)

PREFIX = "/console"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    # No inline script or style, nothing from elsewhere, no framing, forms post here only.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Never a referrer to another site; "no-referrer" would make browsers send `Origin: null`
    # with the console's own forms, which the origin check must then refuse.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def same_origin(request: web.Request) -> bool:
    """Whether a browser says the request comes from the console's own pages. Requests
    without these headers (scripts, old browsers) are judged by their CSRF token alone."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    # The host alone: behind a proxy that ends TLS, the scheme seen here is not the browser's.
    return origin != "null" and urlsplit(origin).netloc.lower() == request.host.lower()


@web.middleware
async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The gate of every ``/console`` request (other paths pass untouched)."""
    if not is_console(request.path):
        return await handler(request)
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as error:
        response = _failure(request, error.status, error.reason)
    except NotFound as error:
        response = _failure(request, 404, str(error))
    except InvalidInput as error:
        response = _failure(request, 400, str(error))
    except DatabaseUnavailable as error:
        log.error("console: database unavailable: %s", error, extra={"action": "console.db"})
        response = _failure(request, 503, "The database cannot answer now; try again shortly.")
    response.headers.update(SECURITY_HEADERS)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.name
    if route in PUBLIC_ROUTES:
        if request.method == "POST" and not same_origin(request):
            return _failure(request, 403, "This form must be sent from the console's own page.")
        return await handler(request)
    session = await _current_session(request)
    if isinstance(session, web.StreamResponse):
        return session
    if session is None:
        return _unauthenticated(request)
    if request.method not in ("GET", "HEAD"):
        if not same_origin(request):
            log.warning(
                "console: cross-origin %s %s refused",
                request.method,
                request.path,
                extra={"action": "console.cross_origin", "operator": session.who},
            )
            return _failure(request, 403, "Cross-origin requests are refused.")
        form = await request.post()
        if not check_csrf(session, form.get("csrf")):
            return _failure(request, 403, "The form's CSRF token is missing or wrong: reload it.")
    request[CURRENT] = session
    response = await handler(request)
    if request.get(MINTED):
        request.app[COOKIES].set(response, session)
    return response


async def _current_session(request: web.Request) -> ConsoleSession | web.Response | None:
    """The console's session of ``request``; else one made from an allowed next-auth session
    (marked to be set as a cookie); a 403 page for a next-auth user who is not allowed."""
    session = request.app[COOKIES].read(request.cookies.get(COOKIE_NAME))
    if session is not None:
        return session
    console = request.app[SETTINGS].console
    app_sessions = request.app.get(APP_SESSIONS)
    if not console.by_session or app_sessions is None:
        return None
    try:
        user = await app_sessions.user(request.cookies)
    except (SessionRefused, SessionsUnavailable):
        return None
    if user is None:
        return None
    who = str(user.get("email") or user.get("id") or "a next-auth user")
    if not console.user_allowed(user):
        log.warning(
            "console: next-auth user %s is not allowed",
            who,
            extra={"action": "console.refused", "operator": who},
        )
        return _failure(request, 403, f"{who} may not use the console.")
    request[MINTED] = True
    log.info(
        "console: %s signed in with the app's session",
        who,
        extra={"action": "console.signed_in", "operator": who},
    )
    return ConsoleSession.start(who, "next-auth")


def _wants_json(request: web.Request) -> bool:
    return request.path.endswith(".json")


def _unauthenticated(request: web.Request) -> web.Response:
    if _wants_json(request):
        return web.json_response({"error": "sign in at /console/sign-in"}, status=401)
    if request.headers.get("HX-Request"):
        # The overview's refresh after the session ran out: htmx loads the sign-in page.
        return web.Response(status=401, headers={"HX-Redirect": "/console/sign-in"})
    settings = request.app[SETTINGS].console
    context = {
        "message": "Sign in to use the console.",
        "token_sign_in": True,
        "session_sign_in": settings.by_session,
    }
    return render("sign_in.html", context, status=401)


def _failure(request: web.Request, status: int, text: str) -> web.Response:
    if _wants_json(request):
        return web.json_response({"error": text}, status=status)
    context = {
        "heading": _HEADINGS.get(status, "Error"),
        "text": text,
        "tone": "bad",
        "back": PREFIX,
        "session": request.get(CURRENT),
    }
    return render("message.html", context, status=status)


_HEADINGS = {
    400: "Not understood",
    401: "Sign in",
    403: "Refused",
    404: "Not found",
    405: "Not allowed",
    429: "Too many attempts",
    503: "Unavailable",
}
