"""Why a connection to a database failed, in one line that says what to change: TLS that did
not verify, a server without TLS, a server that wants TLS, a server that never answered.
Recognised by the standard library's exceptions and the drivers' messages, without importing
a driver."""

from __future__ import annotations

import errno
import socket
import ssl

__all__ = ["connection_problem", "is_misconfiguration"]

# OpenSSL's verification codes worth naming (X509_V_ERR_*).
HOST_MISMATCHES = (62, 64)  # a host name, an IP address the certificate does not name
UNKNOWN_ISSUERS = (2, 19, 20, 21)  # unable to get issuer, self-signed in chain, local issuer
EXPIRED = 10


def connection_problem(error: BaseException) -> str | None:
    """The reason ``error`` (or an exception it was raised from) gives, in words; None when
    it is not one of the failures this module knows."""
    for cause in _chain(error):
        reason = _reason(cause)
        if reason is not None:
            return reason
    return None


def is_misconfiguration(error: BaseException) -> bool:
    """Whether ``error`` says the client's and the server's TLS do not fit (not that the
    server is down or slow)."""
    return any(
        isinstance(cause, ssl.SSLError) or _mismatched_tls(str(cause)) for cause in _chain(error)
    )


def _mismatched_tls(text: str) -> bool:
    return "rejected SSL upgrade" in text or _refuses_plain(text)


def _refuses_plain(text: str) -> bool:
    # PostgreSQL's pg_hba.conf has no line for a connection without TLS; PgBouncer's
    # client_tls_sslmode=require answers a plain login with "SSL required".
    return ("no pg_hba.conf entry" in text and "no encryption" in text) or text == "SSL required"


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    orig = getattr(error, "orig", None)  # SQLAlchemy's wrapper keeps the driver's error here
    if isinstance(orig, BaseException) and orig not in seen:
        seen.extend(_chain(orig))
    return seen


def _reason(error: BaseException) -> str | None:
    text = str(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        code = error.verify_code
        if code in HOST_MISMATCHES:
            return (
                f"TLS: the server's certificate is not for this host name ({error.verify_message});"
                " connect by a name the certificate names, or use sslmode=verify-ca"
            )
        if code in UNKNOWN_ISSUERS:
            return (
                "TLS: the server's certificate is not signed by a CA this client trusts"
                f" ({error.verify_message}): check sslrootcert"
            )
        if code == EXPIRED:
            return "TLS: the server's certificate has expired"
        return f"TLS: the server's certificate did not verify ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed: {error.reason or text}"
    if "rejected SSL upgrade" in text:  # asyncpg's words
        return (
            "the server does not offer TLS, and sslmode asks for it: use sslmode=disable or prefer"
        )
    if _refuses_plain(text):
        return "the server refuses connections without TLS: use sslmode=require or stronger"
    if isinstance(error, socket.gaierror):
        return "the database's host name is not known (DNS): check the host in the URL"
    if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
        return (
            "nothing listens at the database's address: is the server running, and on the"
            " port the URL gives?"
        )
    if isinstance(error, TimeoutError):
        return "no answer in time (connect_timeout, or a query's bound): is the server stuck?"
    return None
