"""One reading of a PostgreSQL URL, as libpq and Prisma write it: hosts, credentials, libpq's
parameters (``sslmode``, ``sslrootcert``, ``connect_timeout``, ...), Prisma's (``schema``,
``connection_limit``, ``pgbouncer``, ``sslaccept``, ...) and the environment variables libpq
reads where the URL does not say (``PGSSLMODE``, ``PGPASSWORD``, ...).

Every URL setting of the service goes through ``parse_postgres_url``: a parameter it does not
know, a value it cannot take, or two parameters that disagree is a ``ValueError`` whose one
line names the parameter and what it takes, before anything connects. The result says what a
connection does (which TLS checks, which timeouts, whether a transaction pooler is in front);
``service.store.backends.postgres_connect`` turns it into asyncpg's arguments.

Nothing here imports a driver: the settings are read by every command, drivers only by the
ones that connect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from service.config.url_parameters import PARAMETERS, SSL_MODES, UNSUPPORTED, port

__all__ = [
    "POSTGRES_SCHEMES",
    "SSL_MODES",
    "PostgresUrl",
    "TlsCheck",
    "masked",
    "parse_postgres_url",
    "with_libpq_environment",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+asyncpg://")
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds: a server that never answers ends a start-up in time
# libpq's environment variables that stand in for a parameter the URL leaves out.
LIBPQ_ENVIRONMENT = (
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGAPPNAME", "application_name"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
)


class TlsCheck:
    """What a TLS connection verifies of the server's certificate."""

    NONE = "none"  # encrypted, unverified (libpq's require, Prisma's accept_invalid_certs)
    CHAIN = "chain"  # signed by the CA (verify-ca)
    CHAIN_AND_HOST = "chain and host name"  # and issued for the host connected to (verify-full)


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL URL read and checked: where, as whom, and how to connect."""

    hosts: tuple[str, ...] = ()  # names, addresses, or Unix socket directories (``/...``)
    ports: tuple[int, ...] = ()
    user: str = ""
    password: str = ""
    database: str = ""
    sslmode: str = "prefer"
    sslrootcert: str = ""  # a CA file, or ``system`` for the system's CAs
    sslcert: str = ""  # the client's certificate (libpq's meaning)
    sslkey: str = ""
    sslpassword: str = ""
    sslaccept: str = ""  # Prisma's: strict or accept_invalid_certs
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT  # None: no limit (libpq's 0)
    socket_timeout: float | None = None  # Prisma's: a bound on each query
    application_name: str = ""
    options: str = ""
    target_session_attrs: str = ""
    passfile: str = ""
    schema: str = ""  # Prisma's: the schema of the tables
    connection_limit: int | None = None  # Prisma's: the pool's size
    pool_timeout: float | None = None  # Prisma's: how long a request waits for a connection
    pgbouncer: bool = False  # Prisma's: a transaction pooler is in front
    statement_cache_size: int | None = None
    given: frozenset[str] = field(default=frozenset(), compare=False)  # the parameters written

    @property
    def tls_required(self) -> bool:
        """Whether a connection without TLS is refused by the client."""
        return self.sslmode in ("require", "verify-ca", "verify-full")

    @property
    def tls_check(self) -> str:
        """What the client verifies of the server's certificate."""
        if self.sslmode == "verify-full":
            return TlsCheck.CHAIN_AND_HOST
        if self.sslmode == "verify-ca":
            return TlsCheck.CHAIN
        if self.sslmode != "require":
            return TlsCheck.NONE
        if self.sslaccept == "strict":
            return TlsCheck.CHAIN_AND_HOST  # Prisma's strict: every certificate checked
        if self.sslaccept == "accept_invalid_certs":
            return TlsCheck.NONE
        # libpq: with a root certificate at hand, require checks the chain as verify-ca does.
        return TlsCheck.CHAIN if self.ca_file else TlsCheck.NONE

    @property
    def ca_file(self) -> str:
        """The CA file that verifies the server ("" for none, ``system`` for the system's)."""
        if self.sslrootcert:
            return self.sslrootcert
        if self.sslaccept and self.sslcert:
            return self.sslcert  # Prisma's sslcert is the server's root certificate
        if self.sslaccept == "strict":
            return "system"
        default = _home_file("root.crt")
        return str(default) if default is not None and self.sslmode != "disable" else ""

    @property
    def client_certificate(self) -> tuple[str, str]:
        """The client's certificate and key files, when it presents one."""
        if self.sslaccept or not self.sslcert:
            return "", ""
        return self.sslcert, self.sslkey or self.sslcert

    @property
    def statement_cache(self) -> int:
        """How many prepared statements a connection keeps (none behind a pooler)."""
        if self.pgbouncer:
            return 0
        return 100 if self.statement_cache_size is None else self.statement_cache_size

    @property
    def where(self) -> str:
        """``host:port[,host:port]/database``, for messages (no credentials)."""
        hosts = ",".join(
            f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
            for h, p in zip(self.hosts or ("localhost",), self.ports or (5432,), strict=False)
        )
        return f"{hosts}/{self.database or self.user or 'postgres'}"


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = _split_authority(rest)
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}://{userinfo}{at}{hosts}{slash}{tail}"


def with_libpq_environment(url: str, env: Mapping[str, str]) -> str:
    """``url`` with the parameters libpq would take from ``env`` (``PGSSLMODE``, ...) where the
    URL leaves them out, so that the URL alone says how to connect."""
    base, _, query = url.partition("?")
    pairs = _query_pairs(query)
    written = {key for key, _ in pairs}
    added = [
        (parameter, env[variable].strip())
        for variable, parameter in LIBPQ_ENVIRONMENT
        if parameter not in written and env.get(variable, "").strip()
    ]
    if "password" in dict(added) and _has_password(base):
        added = [(k, v) for k, v in added if k != "password"]
    if not added:
        return url
    extra = "&".join(f"{k}={quote(v, safe='')}" for k, v in added)
    return f"{base}?{query}&{extra}" if query else f"{base}?{extra}"


def parse_postgres_url(
    url: str, *, schema_check: Callable[[str], str] | None = None
) -> PostgresUrl:
    """Read a ``postgresql://`` URL; ``ValueError`` with one line on anything it cannot take.

    ``schema_check`` vets Prisma's ``schema`` as the setting that takes it would (the service's
    own schema has stricter rules than the app's)."""
    scheme = next((s for s in POSTGRES_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise ValueError("must start with postgresql:// (or postgres://)")
    if any(c.isspace() for c in url):
        raise ValueError("has white space in it: percent-encode it (%20)")
    rest = url[len(scheme) :]
    rest, _, query = rest.partition("?")
    authority, _, path = _split_authority(rest)
    userinfo, at, hostlist = authority.rpartition("@")
    if not at:
        userinfo, hostlist = "", authority
    user, _, password = userinfo.partition(":")
    values: dict[str, Any] = {
        "user": _unquoted(user, "the user name"),
        "password": _unquoted(password, "the password"),
        "database": _unquoted(path.lstrip("/").split("/")[0], "the database name") if path else "",
    }
    hosts, ports = _host_list(hostlist)
    given: set[str] = set()
    for key, raw in _query_pairs(query):
        if key in given:
            raise ValueError(f"{key} is given twice")
        given.add(key)
        parameter = PARAMETERS.get(key)
        if parameter is None:
            if key in UNSUPPORTED:
                raise ValueError(f"{key}: {UNSUPPORTED[key]}")
            raise ValueError(f"unknown parameter {key!r}: the URL takes {', '.join(PARAMETERS)}")
        try:
            parameter(values, raw)
        except ValueError as exc:
            raise ValueError(f"{key}={_shown(key, raw)}: {exc}") from None
    if "host" in values:
        hosts, ports = values.pop("host"), ports
    if "port" in values:
        ports = values.pop("port")
    if ports and hosts and len(ports) not in (1, len(hosts)):
        raise ValueError(f"{len(hosts)} hosts but {len(ports)} ports: give one, or one a host")
    if ports and hosts and len(ports) == 1:
        ports = ports * len(hosts)
    if hosts and not ports:
        ports = (5432,) * len(hosts)
    if "schema" in values and schema_check is not None:
        try:
            values["schema"] = schema_check(values["schema"])
        except ValueError as exc:
            raise ValueError(f"schema: {exc}") from None
    if values.get("sslrootcert") == "system" and "sslmode" not in given:
        values["sslmode"] = "verify-full"  # libpq's default with the system's CAs
    parsed = PostgresUrl(hosts=hosts, ports=ports, given=frozenset(given), **values)
    _check_agreement(parsed)
    return parsed


def _check_agreement(url: PostgresUrl) -> None:
    """Refuse parameters that contradict each other (libpq would ignore one silently)."""
    tls_files = [k for k in ("sslrootcert", "sslcert", "sslkey", "sslaccept") if k in url.given]
    if url.sslmode == "disable" and tls_files:
        raise ValueError(
            f"{tls_files[0]} is given but sslmode=disable never uses TLS: drop one of them"
        )
    if url.sslrootcert == "system" and url.sslmode != "verify-full" and "sslmode" in url.given:
        raise ValueError(
            f"sslrootcert=system needs sslmode=verify-full (the system's CAs vouch for host"
            f" names), got sslmode={url.sslmode}"
        )
    if url.sslaccept == "accept_invalid_certs" and url.sslmode in ("verify-ca", "verify-full"):
        raise ValueError(
            f"sslaccept=accept_invalid_certs contradicts sslmode={url.sslmode}: drop one of them"
        )
    if url.sslaccept and url.sslmode in ("disable", "allow", "prefer") and "sslmode" in url.given:
        raise ValueError(
            f"sslaccept checks certificates, but sslmode={url.sslmode} does not require TLS:"
            " use sslmode=require"
        )
    if url.sslkey and not url.sslcert:
        raise ValueError("sslkey is given without sslcert, the certificate it belongs to")
    if url.pgbouncer and url.statement_cache_size:
        raise ValueError(
            "pgbouncer=true turns prepared statements off, but statement_cache_size="
            f"{url.statement_cache_size} asks for them: drop statement_cache_size"
        )
    if url.tls_check != TlsCheck.NONE and not url.ca_file:
        raise ValueError(
            f"sslmode={url.sslmode} verifies the server's certificate: give sslrootcert, a CA"
            " file (or system for the system's CAs)"
        )


# -- the URL's parts --------------------------------------------------------------------------


def _split_authority(rest: str) -> tuple[str, str, str]:
    """``user:pw@hosts`` and the path after it; a ``/`` inside ``[...]`` or the password is
    not the path's (libpq takes an unescaped ``/`` in neither, but a user may write one)."""
    at = rest.rfind("@")
    start = at + 1 if at >= 0 else 0
    slash = rest.find("/", start)
    if slash < 0:
        return rest, "", ""
    return rest[:slash], "/", rest[slash + 1 :]


def _has_password(base: str) -> bool:
    _scheme, _, rest = base.partition("://")
    authority = _split_authority(rest)[0]
    userinfo, at, _ = authority.rpartition("@")
    return bool(at) and ":" in userinfo


def _unquoted(raw: str, what: str) -> str:
    text = unquote(raw, errors="strict") if "%" in raw else raw
    if "\x00" in text:
        raise ValueError(f"{what} holds a NUL character")
    return text


def _host_list(hostlist: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``h1:5432,[::1]:5433,h3`` as libpq reads it: hosts and their ports."""
    if not hostlist:
        return (), ()
    hosts: list[str] = []
    ports: list[int] = []
    for item in hostlist.split(","):
        if item.startswith("["):
            host, close, tail = item[1:].partition("]")
            if not close or (tail and not tail.startswith(":")):
                raise ValueError(
                    f"an IPv6 host is written [address] or [address]:port, got {item!r}"
                )
            port_text = tail[1:]
        else:
            host, _, port_text = item.partition(":")
        host = _unquoted(host, "a host name")
        if not host and len(hostlist.split(",")) > 1:
            raise ValueError("every host of a list needs a name")
        hosts.append(host)
        if port_text:
            ports.append(port(port_text))
    if ports and len(ports) != len(hosts):
        raise ValueError("give every host of a list its port, or none of them")
    return tuple(h or "localhost" for h in hosts), tuple(ports)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((unquote(key), unquote(value)))  # libpq: a + is a +
    return pairs


def _shown(key: str, raw: str) -> str:
    return "***" if key in ("password", "sslpassword") else raw


def _home_file(name: str) -> Path | None:
    """libpq's default file ``~/.postgresql/NAME``, if it is there."""
    try:
        path = Path.home() / ".postgresql" / name
    except RuntimeError:
        return None
    return path if path.is_file() else None
