"""The client side of TLS to a database: a context that checks what the URL asked for."""

from __future__ import annotations

import ssl

__all__ = ["client_context"]


def client_context(
    ca_file: str,
    *,
    verify_chain: bool,
    verify_host: bool,
    certificate: tuple[str, str] = ("", ""),
    key_password: str = "",
) -> ssl.SSLContext:
    """TLS 1.2 or later; the server's certificate checked against ``ca_file`` (``system``:
    the system's CAs) when ``verify_chain``, and its host name when ``verify_host`` too;
    ``certificate``: the client's own (certificate file, key file), if it presents one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify_chain:
        if ca_file == "system":
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            context.load_verify_locations(cafile=ca_file)
        context.check_hostname = verify_host
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certificate[0]:
        context.load_cert_chain(
            certificate[0], keyfile=certificate[1], password=lambda: key_password
        )
    return context
