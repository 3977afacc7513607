"""The settings: frozen dataclasses whose fields declare the variable each is read from.

Every field that one variable fills says so in its own line (``setting``): the variable's name,
its default (also the field's), its parser and its meaning. ``Settings.from_env`` reads them,
then resolves what depends on more than one variable (the Inngest origin, the next-auth
secrets, defaults that follow other settings) and checks the settings against each other. The
README's configuration table is rendered from the same declarations (``service.config.table``).
The parts: ``delivery`` (Inngest and the relay), ``callers`` (sessions and the Event API),
``console`` (the operators' web console).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from service.config.callers import (
    EventApiSettings,
    NextAuthSettings,
    strong_secret,
    strong_secrets,
)
from service.config.console import ConsoleSettings
from service.config.database_url import (
    LIBPQ_ENVIRONMENT,
    PostgresUrl,
    parse_postgres_url,
    with_libpq_environment,
)
from service.config.delivery import InngestSettings, RelaySettings
from service.config.nextauth_database import NextAuthDatabaseSettings
from service.config.variables import (
    ConfigError,
    Variable,
    choice,
    comma_list,
    declared_variable,
    duration,
    flag,
    integer,
    read_declared,
    setting,
    text,
)

__all__ = [
    "Settings",
    "configured_event_max_bytes",
    "configured_schema",
    "normalise_database_url",
    "require_session_secret",
    "schema_name",
]

DEFAULT_SQLITE_PATH = Path("var") / "service.db"
ENVIRONMENTS = ("development", "production")
SQLITE_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
DATABASE_DRIVERS = (
    ("sqlite://", "sqlite+aiosqlite://"),
    ("postgres://", "postgresql+asyncpg://"),
    ("postgresql://", "postgresql+asyncpg://"),
)


def normalise_database_url(url: str) -> str:
    """Map plain ``sqlite://`` and ``postgresql://`` URLs onto the async drivers; refuse a
    malformed one without echoing it (it may hold a password). A PostgreSQL URL is read
    whole (``parse_postgres_url``): its parameters are checked here, before anything
    connects."""
    if url.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        parse_postgres_url(url, schema_check=schema_name)
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError("not a valid database URL (check its port and characters)") from None
    if not parts.scheme or any(c.isspace() for c in url):
        raise ValueError("not a valid database URL (check its port and characters)")
    if parts.scheme in ("sqlite", "sqlite+aiosqlite") and (parts.netloc or not parts.path):
        raise ValueError(
            "a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
            f" (three slashes before the path), got {url}"
        )
    for plain, driver in DATABASE_DRIVERS:
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(tuple(driver for _plain, driver in DATABASE_DRIVERS)):
        return url
    raise ValueError("must be a sqlite:// or postgresql:// URL")


def _direct_url(url: str) -> str:
    if not url.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        raise ValueError("must be a postgresql:// URL (the same database as DATABASE_URL)")
    return normalise_database_url(url)


def _with_environment(variable: str, url: str, env: Mapping[str, str]) -> str:
    """A PostgreSQL ``url`` with libpq's environment variables folded in; a bad value of one
    is refused naming that variable."""
    folded = with_libpq_environment(url, env)
    if folded == url:
        return url
    try:
        parse_postgres_url(folded, schema_check=schema_name)
    except ValueError as exc:
        culprit = next(
            (name for name, parameter in LIBPQ_ENVIRONMENT if str(exc).startswith(parameter)),
            variable,
        )
        raise ConfigError(culprit, f"{exc} (read for {variable})") from None
    return folded


def schema_name(raw: str) -> str:
    """A PostgreSQL schema the service can name: lower-case letters, digits and ``_``, not
    starting with a digit, at most 48 characters (its NOTIFY channel adds 14 to the 63 allowed),
    not one of PostgreSQL's own (``pg_*``, ``information_schema``)."""
    if not SCHEMA_NAME.fullmatch(raw) or raw.startswith("pg_") or raw == "information_schema":
        raise ValueError(
            "must be 1 to 48 lower-case letters, digits and _, not starting with a digit, and"
            f" not one of PostgreSQL's own schemas, got {raw!r}"
        )
    return raw


def configured_schema(env: Mapping[str, str] | None = None) -> str:
    """``DATABASE_SCHEMA`` as ``Settings`` reads it from ``env`` (default: the process's
    environment), for the code that runs in an app's process without the service's settings."""
    variable: Variable[str] = declared_variable(Settings, "database_schema")
    return variable.read(os.environ if env is None else env)


def configured_event_max_bytes(env: Mapping[str, str] | None = None) -> int:
    """``EVENT_MAX_BYTES`` as the settings read it from ``env`` (default: the process's
    environment), for the code that runs in an app's process without the service's settings."""
    variable: Variable[int] = declared_variable(EventApiSettings, "max_event_bytes")
    return variable.read(os.environ if env is None else env)


def _internal_token(token: str) -> None:
    if len(token) < 16:
        raise ValueError("each token needs at least 16 characters")


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    environment: str = setting(
        "SERVICE_ENV",
        "development",
        choice(*ENVIRONMENTS),
        "`production` requires `SESSION_SECRET` and turns on secure cookies",
    )
    host: str = setting("HOST", "127.0.0.1", text, "where `service serve` listens")
    port: int = setting("PORT", 8080, integer(1, 65535), "the port `service serve` listens on")
    database_url: str = setting(
        "DATABASE_URL",
        f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}",
        normalise_database_url,
        "`sqlite:///PATH` or `postgresql://USER:PASSWORD@HOST:PORT/DB?PARAMETERS`, with"
        " libpq's and Prisma's parameters (see \"Hosted PostgreSQL\")",
        shown=f"`sqlite:///{DEFAULT_SQLITE_PATH}`",
    )
    database_direct_url: str = setting(
        "DATABASE_DIRECT_URL",
        "",
        _direct_url,
        "PostgreSQL behind a transaction pooler: the same database without the pooler, for"
        " what needs a session of its own (`db upgrade`, relays' `LISTEN`)",
        shown="`DATABASE_URL`",
    )
    database_schema: str = setting(
        "DATABASE_SCHEMA",
        "public",
        schema_name,
        "PostgreSQL: the schema of every table, function and sequence of the service (and of"
        " its migrations' version table), created by `service db upgrade`; a schema of its own"
        " lets the service share the app's database",
    )
    sqlite_synchronous: str = setting(
        "SQLITE_SYNCHRONOUS",
        "FULL",
        choice(*SQLITE_SYNC_MODES, upper=True),
        "SQLite's `synchronous` pragma; `FULL` keeps an acknowledged event through power loss",
    )
    sqlite_busy_timeout_ms: int = setting(
        "SQLITE_BUSY_TIMEOUT_MS",
        5000,
        integer(0, 600_000),
        "how long a write waits for SQLite's lock before the answer is 503",
    )
    db_pool_size: int = setting(
        "DB_POOL_SIZE", 5, integer(1, 100), "database connections per process"
    )
    session_secret: str = setting(
        "SESSION_SECRET",
        "",
        strong_secret("SESSION_SECRET"),
        "encrypts session cookies; 32+ random characters",
        shown="generated into `var/` in development",
    )
    session_previous_secrets: tuple[str, ...] = setting(
        "SESSION_SECRET_PREVIOUS",
        (),
        strong_secrets("SESSION_SECRET_PREVIOUS"),
        "comma-separated secrets still accepted during a rotation",
    )
    session_cookie_name: str = setting(
        "SESSION_COOKIE_NAME", "AIOHTTP_SESSION", text, "the session cookie's name"
    )
    session_max_age: int = setting(
        "SESSION_MAX_AGE",
        86400,
        integer(60, 400 * 86400),
        "seconds a session cookie stays valid",
    )
    session_cookie_secure: bool = setting(
        "SESSION_COOKIE_SECURE",
        False,
        flag,
        "the cookie's `Secure` flag",
        shown="on in production",
    )
    internal_api_tokens: tuple[str, ...] = setting(
        "INTERNAL_API_TOKENS",
        (),
        comma_list(_internal_token),
        "comma-separated bearer tokens of internal callers (16+ characters each)",
    )
    nextauth: NextAuthSettings = field(default_factory=NextAuthSettings)
    nextauth_database: NextAuthDatabaseSettings = field(default_factory=NextAuthDatabaseSettings)
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES",
        64 * 1024,
        integer(1024, 16 * 1024 * 1024),
        "request bodies above this are refused with 413",
    )
    # Node's default (--max-http-header-size): what the Next.js app itself takes, so that a
    # session of three cookie chunks reaches the service as it reaches the app.
    max_header_bytes: int = setting(
        "MAX_HEADER_BYTES",
        16 * 1024,
        integer(8 * 1024, 1024 * 1024),
        "the request line and headers together at most this (Node's default); 431 beyond",
    )
    idempotency_ttl: float = setting(
        "IDEMPOTENCY_TTL",
        86400.0,
        duration(low=1.0),
        "how long an `Idempotency-Key` is remembered",
    )
    log_format: str = setting(
        "LOG_FORMAT",
        "auto",
        choice(*LOG_FORMATS),
        "`json` (one object a line), `text`, or `auto`: text on a terminal, else JSON",
    )
    log_level: str = setting(
        "LOG_LEVEL",
        "INFO",
        choice(*LOG_LEVELS, upper=True),
        "`DEBUG`, `INFO`, `WARNING`, `ERROR`",
    )
    inngest: InngestSettings = field(default_factory=InngestSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    event_api: EventApiSettings = field(default_factory=EventApiSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @functools.cached_property
    def postgres(self) -> PostgresUrl:
        """``DATABASE_URL`` read whole (PostgreSQL only)."""
        return parse_postgres_url(self.database_url, schema_check=schema_name)

    @functools.cached_property
    def postgres_direct(self) -> PostgresUrl | None:
        """Where session-bound work connects: ``DATABASE_DIRECT_URL``, else ``DATABASE_URL``
        unless a transaction pooler is in front of it (then None: nothing session-bound)."""
        if self.database_direct_url:
            return parse_postgres_url(self.database_direct_url, schema_check=schema_name)
        return None if self.postgres.pgbouncer else self.postgres

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and CLI flags use this)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ``ConfigError`` on the first bad one."""
        env = os.environ if env is None else env
        values = read_declared(cls, env)
        production = values["environment"] == "production"
        if not declared_variable(cls, "session_cookie_secure").is_set(env):
            values["session_cookie_secure"] = production
        schema = declared_variable(cls, "database_schema")
        if schema.is_set(env) and values["database_url"].startswith("sqlite"):
            raise ConfigError(schema.name, "SQLite has no schemas: unset it, or use PostgreSQL")
        if values["database_url"].startswith("postgresql"):
            values.update(_postgres_values(cls, values, env))
        elif values["database_direct_url"]:
            raise ConfigError("DATABASE_DIRECT_URL", "is for PostgreSQL: unset it with SQLite")
        inngest = InngestSettings.from_env(env)
        nextauth_database = NextAuthDatabaseSettings.from_env(env)
        nextauth = NextAuthSettings.from_env(env, production)
        console = ConsoleSettings.from_env(env)
        if (
            console.allowed_roles
            and not nextauth_database.enabled
            and not ({"role", "roles"} & set(nextauth.user_claims))
        ):
            raise ConfigError(
                "CONSOLE_ALLOWED_ROLES",
                "reads the session user's `role` or `roles`: add that claim to"
                " NEXTAUTH_USER_CLAIMS (the app's `jwt` callback puts it in the token)",
            )
        return cls(
            **values,
            nextauth=nextauth,
            nextauth_database=nextauth_database,
            inngest=inngest,
            relay=RelaySettings.from_env(env, inngest.request_timeout),
            event_api=EventApiSettings.from_env(env),
            console=console,
        )


def _postgres_values(
    cls: type[Settings], values: Mapping[str, object], env: Mapping[str, str]
) -> dict[str, object]:
    """The PostgreSQL URLs with libpq's environment folded in, and what their Prisma
    parameters say of other settings (the schema, the pool's size), checked against those
    settings where both are given."""
    url = _with_environment("DATABASE_URL", str(values["database_url"]), env)
    direct = str(values["database_direct_url"])
    if direct:
        direct = _with_environment("DATABASE_DIRECT_URL", direct, env)
    parsed = parse_postgres_url(url, schema_check=schema_name)
    changes: dict[str, object] = {"database_url": url, "database_direct_url": direct}
    for field_name, value, parameter in (
        ("database_schema", parsed.schema or None, "schema"),
        ("db_pool_size", parsed.connection_limit, "connection_limit"),
    ):
        if value is None:
            continue
        variable = declared_variable(cls, field_name)
        if variable.is_set(env) and values[field_name] != value:
            raise ConfigError(
                variable.name,
                f"{values[field_name]} disagrees with DATABASE_URL's {parameter}={value}:"
                " give one of them",
            )
        changes[field_name] = value
    if direct and parse_postgres_url(direct, schema_check=schema_name).pgbouncer:
        raise ConfigError(
            "DATABASE_DIRECT_URL", "says pgbouncer=true: it is the URL without the pooler"
        )
    return changes


def require_session_secret(settings: Settings) -> None:
    """Processes that read or make cookies need a real secret in production (development
    falls back to one kept in ``var/``); relays and migrations never touch cookies."""
    if settings.is_production and not settings.session_secret:
        raise ConfigError("SESSION_SECRET", "required when SERVICE_ENV=production")


def require_event_key(settings: Settings) -> None:
    """A relay outside dev mode cannot deliver without a key: refuse to start."""
    if not settings.inngest.event_key and not settings.inngest.dev_mode:
        raise ConfigError(
            "INNGEST_EVENT_KEY",
            "required to deliver events (or set INNGEST_DEV=1 for a dev server)",
        )
