"""Who is signed in to the console: the console's own session cookie, made from an operator
token or from the Next.js app's next-auth session of an allowed email.

The cookie is encrypted and authenticated (Fernet) with keys of its own, derived from the
session secrets: no cookie of the app's sessions opens the console, nor the reverse. It holds
the operator's name, how they signed in, and the CSRF token every form of theirs carries;
Fernet's own timestamp bounds its life (``CONSOLE_SESSION_MAX_AGE``).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from service.config import ConsoleSettings, Settings, token_digest
from service.config.console import operator_of
from service.http.auth import session_secrets

__all__ = [
    "COOKIE_NAME",
    "ConsoleSession",
    "SessionCookies",
    "SignInLimiter",
    "check_csrf",
    "operator_for_token",
]

COOKIE_NAME = "service_console"
COOKIE_PATH = "/console"
TOKEN_FIELD_MAX = 512  # longer than any token `service console token` makes


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in operator: ``who`` names them in the audit log; ``via`` is ``token`` or
    ``next-auth``; every state-changing form carries ``csrf``."""

    who: str
    via: str
    csrf: str

    @classmethod
    def start(cls, who: str, via: str) -> ConsoleSession:
        return cls(who, via, secrets.token_urlsafe(32))


def _console_key(secret: str) -> Fernet:
    # A key of the console's own: the app's session cookies are made with SHA-256(secret).
    digest = hashlib.sha256(b"service console session\0" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SessionCookies:
    """Makes and reads the console's cookie (the current secret makes, any accepted reads)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._cipher = MultiFernet([_console_key(s) for s in session_secrets(settings)])
        self.max_age = int(settings.console.session_max_age)
        self.secure = settings.session_cookie_secure
        self._clock = clock

    def make(self, session: ConsoleSession) -> str:
        body = json.dumps({"who": session.who, "via": session.via, "csrf": session.csrf})
        return self._cipher.encrypt_at_time(body.encode(), int(self._clock())).decode()

    def read(self, value: str | None) -> ConsoleSession | None:
        """The session in ``value``; None when it is missing, forged, altered or expired."""
        if not value:
            return None
        try:
            body = self._cipher.decrypt_at_time(
                value.encode("ascii"), self.max_age, int(self._clock())
            )
            fields = json.loads(body)
            return ConsoleSession(str(fields["who"]), str(fields["via"]), str(fields["csrf"]))
        except (InvalidToken, UnicodeError, ValueError, KeyError, TypeError):
            return None

    def set(self, response: web.StreamResponse, session: ConsoleSession) -> None:
        """Give ``session`` to the browser: script-proof, same-site only, the console's path."""
        response.set_cookie(
            COOKIE_NAME,
            self.make(session),
            path=COOKIE_PATH,
            max_age=self.max_age,
            httponly=True,
            secure=self.secure,
            samesite="Strict",
        )

    @staticmethod
    def clear(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE_NAME, path=COOKIE_PATH)


def check_csrf(session: ConsoleSession, presented: object) -> bool:
    """Whether a form's CSRF token is its session's (in constant time)."""
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(presented.encode(), session.csrf.encode())


def operator_for_token(token: str, console: ConsoleSettings, extra: tuple[str, ...]) -> str | None:
    """Who ``token`` signs in as; None when it is no operator's. ``extra`` holds digests the
    process made itself (development's printed token)."""
    if not token or len(token) > TOKEN_FIELD_MAX:
        return None
    return operator_of(token_digest(token), console.token_digests + extra)


class SignInLimiter:
    """At most ``attempts`` sign-ins per client address in any minute (a sliding window);
    past that, how many seconds until the next is allowed."""

    WINDOW = 60.0
    MAX_ADDRESSES = 10_000  # the oldest forgotten first: a flood of addresses costs bounded memory

    def __init__(self, attempts: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._attempts = attempts
        self._clock = clock
        self._seen: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def wait_for(self, address: str) -> float:
        """Zero (and the attempt counted) when ``address`` may try now; else seconds to wait."""
        now = self._clock()
        times = self._seen.pop(address, None) or collections.deque()
        while times and times[0] <= now - self.WINDOW:
            times.popleft()
        self._seen[address] = times
        while len(self._seen) > self.MAX_ADDRESSES:
            self._seen.popitem(last=False)
        if len(times) >= self._attempts:
            return times[0] + self.WINDOW - now
        times.append(now)
        return 0.0
