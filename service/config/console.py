"""The operator console's settings: who may sign in, for how long, and where it is served.

The console is off unless ``CONSOLE_TOKENS`` or ``CONSOLE_ALLOWED_EMAILS`` names someone who
may sign in. Tokens are given as their SHA-256 digests (``service console token`` makes a
token and prints both): the environment, the process and its logs never hold an operator's
token itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from service.config.variables import (
    comma_list,
    duration,
    flag,
    integer,
    read_declared,
    setting,
)

__all__ = ["TOKEN_DIGEST_PREFIX", "ConsoleSettings", "operator_of", "token_digest"]

TOKEN_DIGEST_PREFIX = "sha256:"
# An entry of CONSOLE_TOKENS: the digest, after the operator's name the audit log gives.
_ENTRY = re.compile(r"(?:(?P<who>[A-Za-z0-9._@-]{1,64})=)?(?P<digest>sha256:[0-9a-f]{64})")
# Good enough to tell an address from a typo; the next-auth session's own email is compared.
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+")


def token_digest(token: str) -> str:
    """How ``CONSOLE_TOKENS`` names ``token``: ``sha256:`` and its hex digest."""
    return TOKEN_DIGEST_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def _token_entry(raw: str) -> None:
    if not _ENTRY.fullmatch(raw):
        raise ValueError(
            "each entry is `NAME=sha256:` and 64 lower-case hex digits (NAME optional), the"
            " digest of a token, never the token itself (`service console token` makes one)"
        )


def operator_of(digest: str, entries: tuple[str, ...]) -> str | None:
    """Who the entry of ``digest`` names (its digest's start when it names no one); None when
    no entry holds it."""
    for entry in entries:
        match = _ENTRY.fullmatch(entry)
        if match is not None and match["digest"] == digest:
            return match["who"] or "token " + digest[len(TOKEN_DIGEST_PREFIX) :][:12]
    return None


def _email(raw: str) -> None:
    if not _EMAIL.fullmatch(raw):
        raise ValueError(f"{raw!r} is not an email address")


@dataclass(frozen=True)
class ConsoleSettings:
    """``/console``: the operators' web console."""

    token_digests: tuple[str, ...] = setting(
        "CONSOLE_TOKENS",
        (),
        comma_list(_token_entry),
        "comma-separated `sha256:` digests of operator tokens that may sign in to `/console`"
        " (`service console token` makes one); with `CONSOLE_ALLOWED_EMAILS` unset too, the"
        " console is off (in development, on with a token printed in the log)",
    )
    allowed_emails: tuple[str, ...] = setting(
        "CONSOLE_ALLOWED_EMAILS",
        (),
        comma_list(_email),
        "comma-separated emails whose next-auth session (the Next.js app's) may use the console",
    )
    allowed_roles: tuple[str, ...] = setting(
        "CONSOLE_ALLOWED_ROLES",
        (),
        comma_list(),
        "comma-separated roles whose next-auth session may use the console: the session user's"
        " `role` (a string) or `roles` (a list), e.g. a claim of `NEXTAUTH_USER_CLAIMS`",
    )
    session_max_age: float = setting(
        "CONSOLE_SESSION_MAX_AGE",
        1800.0,
        duration(low=60.0),
        "how long a console sign-in lasts (`30m`); then the operator signs in again",
    )
    sign_in_attempts: int = setting(
        "CONSOLE_SIGN_IN_ATTEMPTS",
        10,
        integer(1, 1000),
        "sign-in attempts a client address may make per minute; 429 beyond",
    )
    on_relay: bool = setting(
        "CONSOLE_ON_RELAY",
        False,
        flag,
        "also serve the console on `service relay`'s metrics port",
    )

    @property
    def configured(self) -> bool:
        """Whether anyone is named who may sign in."""
        return bool(self.token_digests or self.by_session)

    @property
    def by_session(self) -> bool:
        """Whether the app's next-auth sessions may open the console."""
        return bool(self.allowed_emails or self.allowed_roles)

    def email_allowed(self, email: object) -> bool:
        """Whether a next-auth session's ``email`` is one of the allowed, in any case."""
        if not isinstance(email, str):
            return False
        wanted = email.strip().lower()
        return any(wanted == allowed.lower() for allowed in self.allowed_emails)

    def user_allowed(self, user: Mapping[str, object]) -> bool:
        """Whether a next-auth session's user may use the console: by email, or by role."""
        if self.email_allowed(user.get("email")):
            return True
        roles = user.get("roles")
        held = set(roles) if isinstance(roles, list) else set()
        if isinstance(role := user.get("role"), str):
            held.add(role)
        return any(isinstance(r, str) and r in self.allowed_roles for r in held)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsoleSettings:
        return cls(**read_declared(cls, env))
