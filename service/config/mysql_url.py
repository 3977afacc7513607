"""A MySQL or MariaDB URL of the Next.js app's database, as the app's ``DATABASE_URL`` has it:
TLS in MySQL's words (``ssl-mode``, ``ssl-ca``) or Prisma's (``sslaccept``, ``sslcert``, the
server's CA), the pool in Prisma's (``connection_limit``, ``pool_timeout``), read and checked
before anything connects."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from service.config.url_parameters import readable_file, seconds, whole

__all__ = ["MysqlUrl", "parse_mysql_url"]

SSL_MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
PARAMETERS = (
    "ssl-mode",
    "sslmode",
    "ssl-ca",
    "sslcert",
    "sslaccept",
    "connection_limit",
    "pool_timeout",
    "connect_timeout",
    "socket_timeout",
)


@dataclass(frozen=True)
class MysqlUrl:
    """The URL without its parameters, and what they say."""

    base: str  # scheme, credentials, host and database, as written
    ssl_mode: str = ""  # one of SSL_MODES; "" when the URL does not ask for TLS
    ca_file: str = ""
    connection_limit: int | None = None
    pool_timeout: float | None = None
    connect_timeout: float | None = None
    socket_timeout: float | None = None

    @property
    def verifies_chain(self) -> bool:
        return self.ssl_mode in ("VERIFY_CA", "VERIFY_IDENTITY")

    @property
    def verifies_host(self) -> bool:
        return self.ssl_mode == "VERIFY_IDENTITY"


def parse_mysql_url(url: str) -> MysqlUrl:
    """Read a ``mysql://`` URL; ``ValueError`` naming the parameter at fault."""
    base, _, query = url.partition("?")
    values: dict[str, str] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key not in PARAMETERS:
            raise ValueError(f"unknown parameter {key!r}: the URL takes {', '.join(PARAMETERS)}")
        if key in values or (key in ("ssl-mode", "sslmode") and _mode_given(values)):
            raise ValueError(f"{key} is given twice")
        values[key] = raw
    mode = values.get("ssl-mode") or values.get("sslmode") or ""
    if mode and mode.upper() not in SSL_MODES:
        raise ValueError(f"ssl-mode={mode}: takes one of {', '.join(SSL_MODES)}")
    mode = mode.upper()
    accept = values.get("sslaccept", "")
    if accept and accept not in ("strict", "accept_invalid_certs"):
        raise ValueError(f"sslaccept={accept}: takes strict or accept_invalid_certs")
    if accept and mode == "DISABLED":
        raise ValueError("sslaccept checks certificates, but ssl-mode=DISABLED never uses TLS")
    if accept:  # Prisma's: TLS, its certificate checked (strict) or not
        mode = mode or ("VERIFY_IDENTITY" if accept == "strict" else "REQUIRED")
    ca = values.get("ssl-ca") or values.get("sslcert") or ""
    if ca:
        try:
            ca = readable_file(ca)
        except ValueError as exc:
            raise ValueError(f"ssl-ca={ca}: {exc}") from None
        mode = mode or "VERIFY_CA"
    if mode in ("VERIFY_CA", "VERIFY_IDENTITY") and not ca:
        ca = "system"
    if mode == "DISABLED" and ca:
        raise ValueError("ssl-ca is given but ssl-mode=DISABLED never uses TLS: drop one")
    numbers: dict[str, int | float | None] = {}
    for name, read in NUMBERS.items():
        if name in values:
            try:
                numbers[name] = read(values[name])
            except ValueError as exc:
                raise ValueError(f"{name}={values[name]}: {exc}") from None
    return MysqlUrl(base, mode, ca, **numbers)  # type: ignore[arg-type]


def _limit(raw: str) -> int:
    return whole(raw, 1, 100)


def _timeout(raw: str) -> float | None:
    return seconds(raw, zero_is_no_limit=True)


NUMBERS = {
    "connection_limit": _limit,
    "pool_timeout": _timeout,
    "connect_timeout": _timeout,
    "socket_timeout": _timeout,
}


def _mode_given(values: dict[str, str]) -> bool:
    return "ssl-mode" in values or "sslmode" in values
