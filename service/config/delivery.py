"""Where events go and how the relay sends them: Inngest's Event API (the names and precedence
of Inngest's own SDKs) and the relay's claims, retries and housekeeping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service.config.variables import (
    VARIABLES,
    ConfigError,
    Variable,
    declared_variable,
    declared_variables,
    duration,
    flag,
    integer,
    is_falsy,
    optional_duration,
    optional_integer,
    read_declared,
    setting,
    text,
)

__all__ = ["INNGEST_CLOUD_ORIGIN", "INNGEST_DEV_ORIGIN", "InngestSettings", "RelaySettings"]

INNGEST_CLOUD_ORIGIN = "https://inn.gs"
INNGEST_DEV_ORIGIN = "http://127.0.0.1:8288"


def _http_origin(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError(f"must be an http(s) URL, got {raw!r}")
    return raw


@dataclass(frozen=True)
class InngestSettings:
    """Where and how to reach Inngest's Event API (the names and precedence of its SDKs)."""

    origin: str = field(
        default=INNGEST_CLOUD_ORIGIN,
        metadata={
            VARIABLES: (
                Variable(
                    "INNGEST_EVENT_API_BASE_URL",
                    "",
                    _http_origin,
                    "origin of Inngest's Event API; wins over the two below",
                ),
                Variable("INNGEST_BASE_URL", "", _http_origin, "origin of Inngest"),
            )
        },
    )
    event_key: str = setting(
        "INNGEST_EVENT_KEY",
        "",
        text,
        "the event key; required outside dev mode; never logged",
        shown="none (`dev` in dev mode)",
    )
    dev_mode: bool = field(
        default=False,
        metadata={
            VARIABLES: (
                Variable(
                    "INNGEST_DEV",
                    "",
                    text,
                    "set (not `0`/`false`): dev mode, origin `http://127.0.0.1:8288` (or the URL"
                    " it holds); unset and no origin above: Inngest Cloud, `https://inn.gs`",
                    shown="unset",
                ),
            )
        },
    )
    request_timeout: float = setting(
        "INNGEST_REQUEST_TIMEOUT", 10.0, duration(low=0.05), "timeout of one request to Inngest"
    )

    @property
    def endpoint(self) -> str:
        """The URL events are posted to; it contains the key, so never log it."""
        return f"{self.origin.rstrip('/')}/e/{self.event_key}"

    @property
    def redacted_endpoint(self) -> str:
        """The endpoint with the key masked, for logs and errors."""
        return f"{self.origin.rstrip('/')}/e/***"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> InngestSettings:
        """The origin by the SDKs' precedence: the Event API's own, Inngest's, the dev server
        (``INNGEST_DEV``, which may hold its URL), else Inngest Cloud."""
        values = read_declared(cls, env)
        api_base, base = declared_variables(cls, "origin")
        dev_raw = env.get("INNGEST_DEV")
        dev_mode = dev_raw is not None and not is_falsy(dev_raw)
        dev_url = (dev_raw or "").strip()
        if dev_mode and not dev_url.startswith(("http://", "https://")):
            try:
                flag(dev_url)  # as the SDKs read it: a boolean, or the dev server's URL
            except ValueError as exc:
                raise ConfigError(
                    "INNGEST_DEV", f"{exc}, or the dev server's http:// or https:// URL"
                ) from None
        origin = api_base.read(env) or base.read(env)
        if not origin and dev_mode and dev_url.startswith(("http://", "https://")):
            origin = dev_url  # an INNGEST_DEV that holds a URL points at that dev server
        if not origin:
            origin = INNGEST_DEV_ORIGIN if dev_mode else INNGEST_CLOUD_ORIGIN
        if not values["event_key"] and dev_mode:
            values["event_key"] = "dev"  # the dev server accepts any key
        return cls(origin=origin, dev_mode=dev_mode, **values)


@dataclass(frozen=True)
class RelaySettings:
    """How the relay claims, sends and retries outbox rows."""

    batch_size: int = setting(
        "RELAY_BATCH_SIZE",
        500,
        integer(1, 5000),
        "events per request to Inngest (Inngest takes at most 5,000)",
    )
    batch_max_bytes: int = setting(
        "RELAY_BATCH_MAX_BYTES",
        2 * 1024 * 1024,
        integer(1024, 64 * 1024 * 1024),
        "bytes per request to Inngest",
    )
    # A row is dead when Inngest refused it, or once it has failed for longer than this since
    # its first failed attempt (None: never); attempts alone bury nothing unless capped.
    give_up_after: float | None = setting(
        "RELAY_GIVE_UP_AFTER",
        3 * 86400.0,
        optional_duration(),
        "a row that keeps failing is `dead` once it has failed for this long since its first"
        " failed attempt (`never`: it waits forever)",
    )
    max_attempts: int | None = setting(
        "RELAY_MAX_ATTEMPTS",
        None,
        optional_integer(1, 1_000_000),
        "attempts before an event is dead, if you want such a limit as well (`never`: none)",
        shown="no limit",
    )
    backoff_base: float = setting(
        "RELAY_BACKOFF_BASE",
        1.0,
        duration(low=0.001),
        "the first retry's backoff ceiling; it doubles with each failed request in a row"
        " (full jitter)",
    )
    backoff_max: float = setting(
        "RELAY_BACKOFF_MAX",
        600.0,
        duration(low=0.001),
        "the longest backoff of a failed request's rows (at least `RELAY_BACKOFF_BASE`)",
    )
    # While every request fails, one probe at a time, at most this far apart.
    probe_max: float = setting(
        "RELAY_PROBE_MAX",
        5.0,
        duration(low=0.1),
        "in an outage, the longest time between two probes (they start 1 s apart and double)",
    )
    lease_seconds: float = setting(
        "RELAY_LEASE",
        60.0,
        duration(low=1.0),
        "how long a relay holds claimed rows; longer than `INNGEST_REQUEST_TIMEOUT`",
        shown="`60s` (at least 3x the request timeout)",
    )
    poll_interval: float = setting(
        "RELAY_POLL_INTERVAL",
        1.0,
        duration(low=0.01),
        "how often an idle relay looks for due rows without a wake-up",
    )
    concurrency: int = setting(
        "RELAY_CONCURRENCY", 2, integer(1, 32), "batches in flight at once in one relay"
    )
    # A request carries one run of Inngest ids (or a stretch of one): a claim of short runs is
    # many requests, which wait on Inngest together rather than one after another.
    requests_in_flight: int = setting(
        "RELAY_REQUESTS_IN_FLIGHT",
        4,
        integer(1, 64),
        "requests to Inngest in flight at once for one batch",
    )
    delivered_retention: float | None = setting(
        "RETENTION_DELIVERED",
        7 * 86400.0,
        optional_duration(),
        "delivered rows older than this are purged by the relay (`never` to keep)",
    )
    dead_retention: float | None = setting(
        "RETENTION_DEAD",
        None,
        optional_duration(),
        "dead rows older than this are purged by the relay (`never`: kept until an operator"
        " purges them)",
        shown="`never`",
    )
    metrics_port: int = setting(
        "RELAY_METRICS_PORT",
        9101,
        integer(0, 65535),
        "where `service relay` serves `/metrics` and `/health` (`0`: not at all; relays"
        " sharing a host need a port each)",
    )
    metrics_host: str = setting(
        "RELAY_METRICS_HOST", "127.0.0.1", text, "the interface of `service relay`'s `/metrics`"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str], request_timeout: float) -> RelaySettings:
        """The relay's variables; the lease's default follows the request timeout."""
        values = read_declared(cls, env)
        lease = declared_variable(cls, "lease_seconds")
        if not lease.is_set(env):
            values["lease_seconds"] = max(lease.default, request_timeout * 3)
        if values["lease_seconds"] <= request_timeout:
            raise ConfigError("RELAY_LEASE", "must be longer than INNGEST_REQUEST_TIMEOUT")
        if values["backoff_max"] < values["backoff_base"]:
            raise ConfigError("RELAY_BACKOFF_MAX", "must not be below RELAY_BACKOFF_BASE")
        return cls(**values)
