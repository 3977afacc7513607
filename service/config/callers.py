"""How the service knows its callers: the Next.js app's next-auth session, and the keys of
the Event API served to the apps' SDKs; and what makes a secret strong enough."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.config.variables import (
    VARIABLES,
    ConfigError,
    Variable,
    comma_list,
    declared_variables,
    integer,
    read_declared,
    setting,
    text,
)

__all__ = [
    "ABSOLUTE_EVENT_MAX_BYTES",
    "DEFAULT_EVENT_MAX_BYTES",
    "EVENT_KEY_PATTERN",
    "EventApiSettings",
    "NextAuthSettings",
    "check_secret_strength",
    "strong_secret",
    "strong_secrets",
]

MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10  # a hex string of 32 random characters has about 15
# Claims that are the user's fields already (id, name, email, image) or the token's bookkeeping.
NEXTAUTH_MAPPED = {"id", "name", "email", "image", "picture", "sub", "exp", "iat", "nbf", "jti"}
COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 6265's cookie-name token
# Inngest's smallest plan takes events of 256 KiB; 3 MiB is its server's absolute maximum.
DEFAULT_EVENT_MAX_BYTES = 256 * 1024
ABSOLUTE_EVENT_MAX_BYTES = 3 * 1024 * 1024
# What an Event API key can be: characters a URL path keeps as they are through the SDKs'
# join (RFC 3986's unreserved), not starting with a dot (a path's "." and ".." segments).
EVENT_KEY_PATTERN = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,255}")


def check_secret_strength(variable: str, secret: str) -> None:
    """Refuse secrets that are short or plainly not random (``aaaa...``, ``abab...``)."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            variable, f"too short: use at least {MIN_SECRET_LENGTH} random characters"
        )
    if len(set(secret)) < MIN_SECRET_DISTINCT:
        raise ConfigError(variable, "too weak: use random characters (e.g. `openssl rand -hex 32`)")


def strong_secret(variable: str) -> Any:
    """A parser of a secret that ``check_secret_strength`` accepts."""

    def parse(raw: str) -> str:
        check_secret_strength(variable, raw)
        return raw

    return parse


def strong_secrets(variable: str) -> Any:
    """A parser of comma-separated secrets that ``check_secret_strength`` accepts."""
    return comma_list(lambda secret: check_secret_strength(variable, secret))


def _event_key(key: str) -> None:
    if not EVENT_KEY_PATTERN.fullmatch(key):
        raise ValueError(
            "each key is 1 to 256 letters, digits and - . _ ~, not starting with a dot"
            " (an SDK puts it in a URL as it is)"
        )


def _cookie_name(raw: str) -> str:
    if not COOKIE_NAME.fullmatch(raw):
        raise ValueError(f"not a cookie name: {raw!r}")
    return raw


def _user_claims(raw: str) -> tuple[str, ...]:
    claims = comma_list()(raw)
    if mapped := NEXTAUTH_MAPPED.intersection(claims):
        raise ValueError(f"mapped already: {', '.join(sorted(mapped))}")
    return claims


@dataclass(frozen=True)
class NextAuthSettings:
    """How to read the Next.js app's own next-auth session cookie; off without a secret."""

    # Not stripped: next-auth keys its HKDF with the secret exactly as the environment holds
    # it. The first two are one secret under Auth.js's and next-auth v4's names; the numbered
    # ones are the further secrets Auth.js accepts during a rotation.
    secrets: tuple[str, ...] = field(
        default=(),
        metadata={
            VARIABLES: (
                Variable(
                    "AUTH_SECRET",
                    "",
                    text,
                    "the Next.js app's own secret, the same value; reads its next-auth session"
                    ' cookie (see "The Next.js app\'s session"); 32+ random characters in'
                    " production",
                    shown="none: next-auth sessions not read",
                    strip=False,
                ),
                Variable(
                    "NEXTAUTH_SECRET",
                    "",
                    text,
                    "next-auth v4's name of `AUTH_SECRET`",
                    strip=False,
                ),
                *(
                    Variable(
                        f"AUTH_SECRET_{n}",
                        "",
                        text,
                        "a further secret of the app during a rotation (Auth.js's names),"
                        " accepted too",
                        strip=False,
                    )
                    for n in (1, 2, 3)
                ),
            )
        },
    )
    cookie_name: str = setting(
        "NEXTAUTH_COOKIE_NAME",
        "",
        _cookie_name,
        "the session cookie's name, for an app that set `cookies.sessionToken.name`",
        shown="next-auth's and Auth.js's names",
    )
    user_claims: tuple[str, ...] = setting(
        "NEXTAUTH_USER_CLAIMS",
        (),
        _user_claims,
        "comma-separated further claims of the token (added by the app's `jwt` callback)"
        " copied into the event's user, e.g. `role,orgId`",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.secrets)

    @classmethod
    def from_env(cls, env: Mapping[str, str], production: bool) -> NextAuthSettings:
        values = read_declared(cls, env)
        found = {v.name: v.read(env) for v in declared_variables(cls, "secrets") if v.is_set(env)}
        for variable, secret in found.items():
            if production:
                check_secret_strength(variable, secret)
        if env.get("NEXTAUTH_USER_CLAIMS", "").strip() and not found:
            raise ConfigError(
                "NEXTAUTH_USER_CLAIMS", "needs the app's AUTH_SECRET (or NEXTAUTH_SECRET)"
            )
        # The cookie's name is the same for database sessions, read without a secret.
        database = env.get("NEXTAUTH_DATABASE_URL", "").strip()
        if env.get("NEXTAUTH_COOKIE_NAME", "").strip() and not (found or database):
            raise ConfigError(
                "NEXTAUTH_COOKIE_NAME",
                "needs the app's AUTH_SECRET (or NEXTAUTH_SECRET) or NEXTAUTH_DATABASE_URL",
            )
        return cls(secrets=tuple(dict.fromkeys(found.values())), **values)


@dataclass(frozen=True)
class EventApiSettings:
    """``POST /e/{key}``, Inngest's Event API served to the apps' own SDKs."""

    # The keys apps may send with; empty: any key in development, the route off in production.
    keys: tuple[str, ...] = setting(
        "EVENT_API_KEYS",
        (),
        comma_list(_event_key),
        "comma-separated event keys apps may send with to `POST /e/{key}` (letters, digits,"
        " `-._~`); none: any key in development, the route off (404) in production",
    )
    max_event_bytes: int = setting(
        "EVENT_MAX_BYTES",
        DEFAULT_EVENT_MAX_BYTES,
        integer(1024, ABSOLUTE_EVENT_MAX_BYTES),
        "the largest event `POST /e/{key}` takes, as stored (256 KiB, the smallest Inngest"
        " plan's limit; at most 3 MiB, Inngest's absolute maximum)",
    )
    max_body_bytes: int = setting(
        "EVENT_BODY_MAX_BYTES",
        16 * 1024 * 1024,
        integer(1024, 256 * 1024 * 1024),
        "the largest `POST /e/{key}` body (413 beyond); at least `EVENT_MAX_BYTES`",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EventApiSettings:
        values = read_declared(cls, env)
        if values["max_body_bytes"] < values["max_event_bytes"]:
            raise ConfigError("EVENT_BODY_MAX_BYTES", "must not be below EVENT_MAX_BYTES")
        return cls(**values)
