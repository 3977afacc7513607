"""Settings: one frozen dataclass read from the environment.

Every knob of the service lives here. ``Settings.from_env`` validates each variable and raises
``ConfigError`` naming the variable, so the CLI can print one clear line and exit with status 2
instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

INNGEST_CLOUD_ORIGIN = "https://inn.gs"
INNGEST_DEV_ORIGIN = "http://127.0.0.1:8288"
DEFAULT_SQLITE_PATH = Path("var") / "service.db"
# What a limit that may be switched off takes to say "no limit".
NO_LIMIT = ("never", "none", "off")
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10  # a hex string of 32 random characters has about 15
ENVIRONMENTS = ("development", "production")
SQLITE_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
LOG_FORMATS = ("auto", "json", "text")
# The Next.js app's secret (Auth.js's name, next-auth v4's), then the further secrets Auth.js
# accepts during a rotation.
NEXTAUTH_SECRETS = (
    "AUTH_SECRET",
    "NEXTAUTH_SECRET",
    "AUTH_SECRET_1",
    "AUTH_SECRET_2",
    "AUTH_SECRET_3",
)
# Claims that are the user's fields already (id, name, email, image) or the token's bookkeeping.
NEXTAUTH_MAPPED = {"id", "name", "email", "image", "picture", "sub", "exp", "iat", "nbf", "jti"}
COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 6265's cookie-name token
# Inngest's smallest plan takes events of 256 KiB; 3 MiB is its server's absolute maximum.
DEFAULT_EVENT_MAX_BYTES = 256 * 1024
ABSOLUTE_EVENT_MAX_BYTES = 3 * 1024 * 1024
# What an Event API key can be: characters a URL path keeps as they are through the SDKs'
# join (RFC 3986's unreserved), not starting with a dot (a path's "." and ".." segments).
EVENT_KEY_PATTERN = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,255}")

T = TypeVar("T")


class ConfigError(ValueError):
    """A variable of the environment holds a value the service cannot use."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def _falsy(value: str) -> bool:
    return value.strip().lower() in ("", "0", "false", "no", "off")


def parse_duration(text: str) -> float:
    """Parse ``90``, ``1.5s``, ``250ms``, ``10m``, ``6h`` or ``7d`` into seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    raw = text.strip().lower()
    for suffix in ("ms", "s", "m", "h", "d"):
        if raw.endswith(suffix):
            number, scale = raw[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = raw, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 7d)") from None
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"must not be negative: {text!r}")
    return seconds


def normalise_database_url(url: str) -> str:
    """Map plain ``sqlite://`` and ``postgresql://`` URLs onto the async drivers; refuse a
    malformed one without echoing it (it may hold a password)."""
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError("not a valid database URL (check its port and characters)") from None
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ValueError("must be a sqlite:// or postgresql:// URL")


class _Reader:
    """Reads and validates variables, naming the variable in every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str = "") -> str:
        return self.env.get(name, default).strip() or default

    def convert(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        def parse(raw: str) -> int:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"must be an integer, got {raw!r}") from None
            if not low <= value <= high:
                raise ValueError(f"must be between {low} and {high}, got {value}")
            return value

        return self.convert(name, default, parse)

    def duration(self, name: str, default: float, low: float = 0.0) -> float:
        def parse(raw: str) -> float:
            value = parse_duration(raw)
            if value < low:
                raise ValueError(f"must be at least {low:g}s, got {raw!r}")
            return value

        return self.convert(name, default, parse)

    def optional_duration(self, name: str, default: float | None) -> float | None:
        raw = self.env.get(name, "").strip().lower()
        if raw in NO_LIMIT:
            return None
        if not raw:
            return default
        return self.duration(name, 0.0)

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        """An integer, or None (no limit) when unset or ``never``."""
        if self.env.get(name, "").strip().lower() in ("", *NO_LIMIT):
            return None
        return self.integer(name, low, low, high)

    def choice(self, name: str, default: str, choices: tuple[str, ...], upper: bool) -> str:
        def parse(raw: str) -> str:
            value = raw.upper() if upper else raw.lower()
            if value not in choices:
                raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
            return value

        return self.convert(name, default, parse)

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        return default if raw is None or not raw.strip() else not _falsy(raw)


@dataclass(frozen=True)
class InngestSettings:
    """Where and how to reach Inngest's Event API (the names and precedence of its SDKs)."""

    origin: str
    event_key: str
    dev_mode: bool
    request_timeout: float = 10.0

    @property
    def endpoint(self) -> str:
        """The URL events are posted to; it contains the key, so never log it."""
        return f"{self.origin.rstrip('/')}/e/{self.event_key}"

    @property
    def redacted_endpoint(self) -> str:
        """The endpoint with the key masked, for logs and errors."""
        return f"{self.origin.rstrip('/')}/e/***"


@dataclass(frozen=True)
class RelaySettings:
    """How the relay claims, sends and retries outbox rows."""

    batch_size: int = 500
    batch_max_bytes: int = 2 * 1024 * 1024
    # A row is dead when Inngest refused it, or once it has failed for longer than this since
    # its first failed attempt (None: never); attempts alone bury nothing unless capped.
    give_up_after: float | None = 3 * 86400.0
    max_attempts: int | None = None
    backoff_base: float = 1.0
    backoff_max: float = 600.0
    # While every request fails, one probe at a time, at most this far apart.
    probe_max: float = 5.0
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    concurrency: int = 2
    delivered_retention: float | None = 7 * 86400.0
    dead_retention: float | None = None
    metrics_port: int = 9101
    metrics_host: str = "127.0.0.1"


@dataclass(frozen=True)
class NextAuthSettings:
    """How to read the Next.js app's own next-auth session cookie; off without a secret."""

    secrets: tuple[str, ...] = ()
    cookie_name: str = ""  # empty: next-auth's and Auth.js's default names
    user_claims: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.secrets)


@dataclass(frozen=True)
class EventApiSettings:
    """``POST /e/{key}``, Inngest's Event API served to the apps' own SDKs."""

    # The keys apps may send with; empty: any key in development, the route off in production.
    keys: tuple[str, ...] = ()
    max_event_bytes: int = DEFAULT_EVENT_MAX_BYTES
    max_body_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = 5000
    db_pool_size: int = 5
    session_secret: str = ""
    session_previous_secrets: tuple[str, ...] = ()
    session_cookie_name: str = "AIOHTTP_SESSION"
    session_max_age: int = 86400
    session_cookie_secure: bool = False
    internal_api_tokens: tuple[str, ...] = ()
    nextauth: NextAuthSettings = field(default_factory=NextAuthSettings)
    max_body_bytes: int = 64 * 1024
    idempotency_ttl: float = 86400.0
    log_format: str = "auto"
    log_level: str = "INFO"
    inngest: InngestSettings = field(
        default_factory=lambda: InngestSettings(INNGEST_DEV_ORIGIN, "", True)
    )
    relay: RelaySettings = field(default_factory=RelaySettings)
    event_api: EventApiSettings = field(default_factory=EventApiSettings)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and CLI flags use this)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ``ConfigError`` on the first bad one."""
        read = _Reader(os.environ if env is None else env)
        environment = read.choice("SERVICE_ENV", "development", ENVIRONMENTS, upper=False)
        production = environment == "production"
        database_url = read.convert("DATABASE_URL", cls.database_url, normalise_database_url)
        return cls(
            environment=environment,
            host=read.text("HOST", "127.0.0.1"),
            port=read.integer("PORT", 8080, 1, 65535),
            database_url=database_url,
            sqlite_synchronous=read.choice(
                "SQLITE_SYNCHRONOUS", "FULL", SQLITE_SYNC_MODES, upper=True
            ),
            sqlite_busy_timeout_ms=read.integer("SQLITE_BUSY_TIMEOUT_MS", 5000, 0, 600_000),
            db_pool_size=read.integer("DB_POOL_SIZE", 5, 1, 100),
            session_secret=_session_secret(read),
            session_previous_secrets=_previous_secrets(read),
            session_cookie_name=read.text("SESSION_COOKIE_NAME", "AIOHTTP_SESSION"),
            session_max_age=read.integer("SESSION_MAX_AGE", 86400, 60, 400 * 86400),
            session_cookie_secure=read.flag("SESSION_COOKIE_SECURE", production),
            internal_api_tokens=_tokens(read),
            nextauth=_nextauth(read, production),
            max_body_bytes=read.integer("MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
            idempotency_ttl=read.duration("IDEMPOTENCY_TTL", 86400.0, low=1.0),
            log_format=read.choice("LOG_FORMAT", "auto", LOG_FORMATS, upper=False),
            log_level=read.choice(
                "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True
            ),
            inngest=_inngest(read),
            relay=_relay(read),
            event_api=_event_api(read),
        )


def _session_secret(read: _Reader) -> str:
    secret = read.text("SESSION_SECRET")
    if secret:
        check_secret_strength("SESSION_SECRET", secret)
    return secret


def require_session_secret(settings: Settings) -> None:
    """Processes that read or make cookies need a real secret in production (development
    falls back to one kept in ``var/``); relays and migrations never touch cookies."""
    if settings.is_production and not settings.session_secret:
        raise ConfigError("SESSION_SECRET", "required when SERVICE_ENV=production")


def check_secret_strength(variable: str, secret: str) -> None:
    """Refuse secrets that are short or plainly not random (``aaaa...``, ``abab...``)."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            variable, f"too short: use at least {MIN_SECRET_LENGTH} random characters"
        )
    if len(set(secret)) < MIN_SECRET_DISTINCT:
        raise ConfigError(variable, "too weak: use random characters (e.g. `openssl rand -hex 32`)")


def _previous_secrets(read: _Reader) -> tuple[str, ...]:
    raw = read.text("SESSION_SECRET_PREVIOUS").split(",")
    secrets_ = tuple(s.strip() for s in raw if s.strip())
    for secret in secrets_:
        check_secret_strength("SESSION_SECRET_PREVIOUS", secret)
    return secrets_


def _tokens(read: _Reader) -> tuple[str, ...]:
    tokens = tuple(t.strip() for t in read.text("INTERNAL_API_TOKENS").split(",") if t.strip())
    for token in tokens:
        if len(token) < 16:
            raise ConfigError("INTERNAL_API_TOKENS", "each token needs at least 16 characters")
    return tokens


def _nextauth(read: _Reader, production: bool) -> NextAuthSettings:
    # Not stripped: next-auth keys its HKDF with the secret exactly as the environment holds it.
    found = {v: read.env[v] for v in NEXTAUTH_SECRETS if read.env.get(v, "").strip()}
    for variable, secret in found.items():
        if production:
            check_secret_strength(variable, secret)
    cookie_name = read.text("NEXTAUTH_COOKIE_NAME")
    if cookie_name and not COOKIE_NAME.fullmatch(cookie_name):
        raise ConfigError("NEXTAUTH_COOKIE_NAME", f"not a cookie name: {cookie_name!r}")
    claims = [c.strip() for c in read.text("NEXTAUTH_USER_CLAIMS").split(",") if c.strip()]
    if mapped := NEXTAUTH_MAPPED.intersection(claims):
        raise ConfigError("NEXTAUTH_USER_CLAIMS", f"mapped already: {', '.join(sorted(mapped))}")
    for variable in ("NEXTAUTH_COOKIE_NAME", "NEXTAUTH_USER_CLAIMS"):
        if read.text(variable) and not found:
            raise ConfigError(variable, "needs the app's AUTH_SECRET (or NEXTAUTH_SECRET)")
    return NextAuthSettings(
        tuple(dict.fromkeys(found.values())), cookie_name, tuple(dict.fromkeys(claims))
    )


def _event_api(read: _Reader) -> EventApiSettings:
    keys = tuple(k.strip() for k in read.text("EVENT_API_KEYS").split(",") if k.strip())
    for key in keys:
        if not EVENT_KEY_PATTERN.fullmatch(key):
            raise ConfigError(
                "EVENT_API_KEYS",
                "each key is 1 to 256 letters, digits and - . _ ~, not starting with a dot"
                " (an SDK puts it in a URL as it is)",
            )
    event_bytes = read.integer(
        "EVENT_MAX_BYTES", DEFAULT_EVENT_MAX_BYTES, 1024, ABSOLUTE_EVENT_MAX_BYTES
    )
    body_bytes = read.integer("EVENT_BODY_MAX_BYTES", 16 * 1024 * 1024, 1024, 256 * 1024 * 1024)
    if body_bytes < event_bytes:
        raise ConfigError("EVENT_BODY_MAX_BYTES", "must not be below EVENT_MAX_BYTES")
    return EventApiSettings(keys, event_bytes, body_bytes)


def _inngest(read: _Reader) -> InngestSettings:
    dev_raw = read.env.get("INNGEST_DEV")
    dev_mode = dev_raw is not None and not _falsy(dev_raw)
    source = next(
        (n for n in ("INNGEST_EVENT_API_BASE_URL", "INNGEST_BASE_URL") if read.text(n)), None
    )
    if source is not None:
        origin = read.text(source)
    # An INNGEST_DEV that holds a URL points at that dev server, as in Inngest's SDKs.
    elif dev_mode and dev_raw and dev_raw.strip().startswith(("http://", "https://")):
        source, origin = "INNGEST_DEV", dev_raw.strip()
    else:
        source, origin = "INNGEST_DEV", INNGEST_DEV_ORIGIN if dev_mode else INNGEST_CLOUD_ORIGIN
    if not origin.startswith(("http://", "https://")):
        raise ConfigError(source, f"must be an http(s) URL, got {origin!r}")
    key = read.text("INNGEST_EVENT_KEY")
    if not key and dev_mode:
        key = "dev"  # the dev server accepts any key
    return InngestSettings(
        origin=origin,
        event_key=key,
        dev_mode=dev_mode,
        request_timeout=read.duration("INNGEST_REQUEST_TIMEOUT", 10.0, low=0.05),
    )


def _relay(read: _Reader) -> RelaySettings:
    timeout = read.duration("INNGEST_REQUEST_TIMEOUT", 10.0, low=0.05)
    lease = read.duration("RELAY_LEASE", max(60.0, timeout * 3), low=1.0)
    if lease <= timeout:
        raise ConfigError("RELAY_LEASE", "must be longer than INNGEST_REQUEST_TIMEOUT")
    backoff_base = read.duration("RELAY_BACKOFF_BASE", 1.0, low=0.001)
    backoff_max = read.duration("RELAY_BACKOFF_MAX", 600.0, low=0.001)
    if backoff_max < backoff_base:
        raise ConfigError("RELAY_BACKOFF_MAX", "must not be below RELAY_BACKOFF_BASE")
    return RelaySettings(
        batch_size=read.integer("RELAY_BATCH_SIZE", 500, 1, 5000),
        batch_max_bytes=read.integer(
            "RELAY_BATCH_MAX_BYTES", 2 * 1024 * 1024, 1024, 64 * 1024 * 1024
        ),
        give_up_after=read.optional_duration("RELAY_GIVE_UP_AFTER", 3 * 86400.0),
        max_attempts=read.optional_integer("RELAY_MAX_ATTEMPTS", 1, 1_000_000),
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        probe_max=read.duration("RELAY_PROBE_MAX", 5.0, low=0.1),
        lease_seconds=lease,
        poll_interval=read.duration("RELAY_POLL_INTERVAL", 1.0, low=0.01),
        concurrency=read.integer("RELAY_CONCURRENCY", 2, 1, 32),
        delivered_retention=read.optional_duration("RETENTION_DELIVERED", 7 * 86400.0),
        dead_retention=read.optional_duration("RETENTION_DEAD", None),
        metrics_port=read.integer("RELAY_METRICS_PORT", 9101, 0, 65535),
        metrics_host=read.text("RELAY_METRICS_HOST", "127.0.0.1"),
    )
