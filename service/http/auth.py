"""Who is calling: an internal bearer token, the Next.js app's next-auth session cookie (a user),
or the service's own encrypted aiohttp-session cookie (a user)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp_session import AbstractStorage
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet, MultiFernet

from service.config import Settings
from service.http.app_sessions.reader import AppSessions
from service.http.nextauth import SessionRefused

# Where `make run` keeps the development session secret, for the server and the CLI alike.
DEV_SECRET_FILE = Path("var") / "dev-session-secret"

NO_CREDENTIALS = "Send a session cookie or an `Authorization: Bearer` internal token."
UNKNOWN_TOKEN = "The bearer token is not one of this service's internal tokens."
NOT_BEARER = "The Authorization header must be `Bearer` and an internal token."
UNREADABLE_SESSION = (
    "The session cookie could not be read (made with another secret, altered, or expired):"
    " sign in again."
)


def development_secret(path: Path = DEV_SECRET_FILE) -> str:
    """The session secret of development mode: made once, kept in ``var/`` for the CLI too."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        # Created readable by its owner only, never briefly by others; O_EXCL: a process that
        # lost the race to create it reads the winner's secret instead.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as file:
            file.write(secret + "\n")
        return secret


class Unauthenticated(Exception):
    """No credentials, or credentials that do not check out; ``detail`` is for the caller,
    ``bearer_error`` what ``WWW-Authenticate`` says of a bearer token (RFC 6750), if any."""

    def __init__(
        self, reason: str, detail: str = NO_CREDENTIALS, bearer_error: str | None = None
    ) -> None:
        super().__init__(reason)
        self.detail = detail
        self.bearer_error = bearer_error


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. ``identity`` scopes idempotency keys; it holds no secret."""

    identity: str
    user: dict[str, Any] | None


def _fernet(secret: str) -> Fernet:
    # Secrets are long random strings (config enforces 32+ characters); SHA-256 turns any of
    # them into the 32-byte key Fernet wants.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def session_secrets(settings: Settings) -> list[str]:
    """The current secret first, then those still accepted during a rotation."""
    current = settings.session_secret or development_secret()
    return [current, *settings.session_previous_secrets]


def cipher(settings: Settings) -> MultiFernet:
    """Encrypts with the current secret; decrypts with any accepted one."""
    return MultiFernet([_fernet(secret) for secret in session_secrets(settings)])


class RotatingCookieStorage(EncryptedCookieStorage):
    """aiohttp-session's encrypted cookies, accepting previous secrets during a rotation."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            _fernet(session_secrets(settings)[0]),
            cookie_name=settings.session_cookie_name,
            max_age=settings.session_max_age,
            secure=settings.session_cookie_secure,
            httponly=True,
            samesite="Lax",
        )
        # MultiFernet has Fernet's encrypt/decrypt(ttl=) interface, which is all the storage
        # uses; the storage's constructor only accepts a single Fernet.
        self._fernet = cipher(settings)  # type: ignore[assignment]


def issue_cookie(settings: Settings, user: Mapping[str, Any]) -> str:
    """A cookie value for ``user`` that the running service accepts (as aiohttp-session
    stores sessions: the creation time and the data, encrypted)."""
    body = {"created": int(time.time()), "session": {"user": dict(user)}}
    return cipher(settings).encrypt(json.dumps(body).encode()).decode()


def token_identity(token: str) -> str:
    """A stable, non-secret name for a token (for idempotency scopes and logs)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def check_token(presented: str, tokens: Sequence[str]) -> bool:
    """Compare against every configured token in constant time."""
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented.encode(), token.encode())
    return matched


async def authenticate(
    request: web.Request,
    tokens: Sequence[str],
    sessions: AbstractStorage,
    nextauth: AppSessions,
) -> Caller:
    """The caller of ``request``; raises ``Unauthenticated`` when there is none.

    A request that carries an Authorization header is judged by it: a bad token is not rescued
    by a cookie. A good token may come with the next-auth session cookie it forwards, whose
    user the event then carries; a session cookie that is sent must check out, with a token or
    without. Without a token the next-auth session comes first, then the service's own. The
    service's session is read straight from its storage rather than through aiohttp-session's
    middleware: this service never changes a session, so it has nothing to save, and a token
    caller pays nothing for it.
    """
    try:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, presented = header.partition(" ")
            presented = presented.strip()
            if scheme.lower() != "bearer" or not presented:
                raise Unauthenticated("not a bearer token", NOT_BEARER, "invalid_request")
            if not check_token(presented, tokens):
                raise Unauthenticated("unknown bearer token", UNKNOWN_TOKEN, "invalid_token")
            internal = token_identity(presented)
            user = await nextauth.user(request.cookies)
            if user is None:
                return Caller(identity=internal, user=None)
            # Scoped to the user too: one internal caller forwards the sessions of many users.
            return Caller(identity=f"{internal}/{user_identity(user)}", user=user)
        user = await nextauth.user(request.cookies)
        if user is not None:
            return Caller(identity=user_identity(user), user=user)
        session = await sessions.load_session(request)
    except UnicodeError as exc:  # header bytes that are not UTF-8 are no credential either
        raise Unauthenticated("undecodable credentials") from exc
    except SessionRefused as exc:
        raise Unauthenticated("refused next-auth session", exc.detail) from exc
    user = session.get("user")
    if not isinstance(user, dict) or not user:
        sent = getattr(sessions, "cookie_name", None) in request.cookies
        raise Unauthenticated("no valid session", UNREADABLE_SESSION if sent else NO_CREDENTIALS)
    return Caller(identity=user_identity(user), user=user)


def user_identity(user: Mapping[str, Any]) -> str:
    """A session caller's name for idempotency scopes: its id, hashed when long (the column
    holds 256 characters, and a user without an id is named by its whole JSON)."""
    name = str(user["id"]) if "id" in user else json.dumps(user, sort_keys=True)
    if len(name) > 64:
        name = "sha256:" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()
    return "user:" + name


def is_internal(caller: Caller) -> bool:
    return caller.identity.startswith("token:")
