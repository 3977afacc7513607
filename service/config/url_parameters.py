"""The parameters a PostgreSQL URL takes, libpq's and Prisma's: for each, how its text is read
into the fields of ``PostgresUrl`` (a ``ValueError`` says what it takes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "PARAMETERS",
    "SSL_ACCEPT",
    "SSL_MODES",
    "UNSUPPORTED",
    "port",
    "readable_file",
    "seconds",
    "whole",
]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
SSL_ACCEPT = ("strict", "accept_invalid_certs")
CHANNEL_BINDING = ("disable", "prefer", "require")


def port(raw: str) -> int:
    """A TCP port."""
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"a port is a number from 1 to 65535, got {raw!r}")
    return int(raw)


def readable_file(raw: str) -> str:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ValueError("no such file")
    if not os.access(path, os.R_OK):
        raise ValueError("the file cannot be read (check its permissions)")
    return str(path)


def seconds(raw: str, *, zero_is_no_limit: bool) -> float | None:
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError("takes a number of seconds") from None
    if seconds != seconds or seconds < 0 or seconds > 86400:
        raise ValueError("takes a number of seconds from 0 to 86400")
    if seconds == 0:
        if zero_is_no_limit:
            return None
        raise ValueError("takes a number of seconds above 0")
    return seconds


def whole(raw: str, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"takes a whole number from {low} to {high}")
    return int(raw)


def _one_of(raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise ValueError(f"takes one of {', '.join(choices)}")
    return raw


def _boolean(raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes", "on"):
        return True
    if raw.lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError("takes true or false")


def _set(name: str, read: Callable[[str], Any]) -> Callable[[dict[str, Any], str], None]:
    def store(values: dict[str, Any], raw: str) -> None:
        values[name] = read(raw)

    return store


def _hosts_parameter(values: dict[str, Any], raw: str) -> None:
    hosts = tuple(h for h in raw.split(",") if h)
    if not hosts:
        raise ValueError("takes a host name, an address or a socket directory")
    for host in hosts:
        if host.startswith("/") and not Path(host).is_dir():
            raise ValueError(f"{host} is not a directory (a Unix socket's directory)")
    values["host"] = hosts


def _ports_parameter(values: dict[str, Any], raw: str) -> None:
    values["port"] = tuple(port(p) for p in raw.split(","))


def _channel_binding(values: dict[str, Any], raw: str) -> None:
    # The driver logs in with SCRAM-SHA-256 without channel binding: "prefer" (libpq's
    # default) and "disable" are met as they are; "require" cannot be.
    if _one_of(raw, CHANNEL_BINDING) == "require":
        raise ValueError(
            "require cannot be met: the driver does not bind its SCRAM login to the TLS"
            " channel; use channel_binding=prefer with sslmode=verify-full, which checks the"
            " server's certificate instead"
        )


def _sslrootcert(raw: str) -> str:
    return "system" if raw == "system" else readable_file(raw)


PARAMETERS: dict[str, Callable[[dict[str, Any], str], None]] = {
    # libpq's
    "host": _hosts_parameter,
    "port": _ports_parameter,
    "user": _set("user", str),
    "password": _set("password", str),
    "dbname": _set("database", str),
    "sslmode": _set("sslmode", lambda raw: _one_of(raw, SSL_MODES)),
    "sslrootcert": _set("sslrootcert", _sslrootcert),
    "sslcert": _set("sslcert", readable_file),
    "sslkey": _set("sslkey", readable_file),
    "sslpassword": _set("sslpassword", str),
    "connect_timeout": _set("connect_timeout", lambda raw: seconds(raw, zero_is_no_limit=True)),
    "application_name": _set("application_name", str),
    "options": _set("options", str),
    "target_session_attrs": _set(
        "target_session_attrs", lambda raw: _one_of(raw, TARGET_SESSION_ATTRS)
    ),
    "passfile": _set("passfile", readable_file),
    "channel_binding": _channel_binding,
    # Prisma's
    "schema": _set("schema", str),
    "connection_limit": _set("connection_limit", lambda raw: whole(raw, 1, 100)),
    "pool_timeout": _set("pool_timeout", lambda raw: seconds(raw, zero_is_no_limit=True)),
    "socket_timeout": _set("socket_timeout", lambda raw: seconds(raw, zero_is_no_limit=False)),
    "pgbouncer": _set("pgbouncer", _boolean),
    "sslaccept": _set("sslaccept", lambda raw: _one_of(raw, SSL_ACCEPT)),
    "statement_cache_size": _set("statement_cache_size", lambda raw: whole(raw, 0, 10_000)),
}
UNSUPPORTED = {
    "sslidentity": "a PKCS#12 identity is not read: give the certificate and key as PEM files"
    " in sslcert and sslkey",
}
