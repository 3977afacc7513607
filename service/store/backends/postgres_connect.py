"""Connecting to PostgreSQL as a ``PostgresUrl`` says: asyncpg's arguments, the TLS context
that verifies what the URL's ``sslmode`` (or Prisma's ``sslaccept``) promises, and the engine
options that keep a transaction pooler (``pgbouncer=true``) working.

Every connection of the service goes through ``connect``: SQLAlchemy's pool (as its
``async_creator_fn``), the group commit's connection, a relay's listening connection, the
migrations, and the lookup of the Next.js app's sessions.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any
from urllib.parse import urlencode

import asyncpg

from service.config.database_url import PostgresUrl, TlsCheck
from service.store.tls import client_context

__all__ = ["connect", "connect_arguments", "pool_connect_args", "tls_context"]

# asyncpg's default bound on each query; a URL's socket_timeout (Prisma's) replaces it.
COMMAND_TIMEOUT = 30.0
NO_LIMIT = 86400.0  # what libpq's connect_timeout=0 ("wait indefinitely") is given as


def tls_context(url: PostgresUrl) -> ssl.SSLContext:
    """The TLS context of a URL that requires TLS: its CA, host-name check and client
    certificate as the URL says."""
    check = url.tls_check
    return client_context(
        url.ca_file,
        verify_chain=check != TlsCheck.NONE,
        verify_host=check == TlsCheck.CHAIN_AND_HOST,
        certificate=url.client_certificate,
        key_password=url.sslpassword,
    )


def connect_arguments(
    url: PostgresUrl, *, command_timeout: float = COMMAND_TIMEOUT
) -> dict[str, Any]:
    """``asyncpg.connect``'s keyword arguments for ``url``."""
    server_settings = {}
    if url.application_name:
        server_settings["application_name"] = url.application_name
    if url.options:
        server_settings["options"] = url.options  # a startup parameter, as libpq sends it
    arguments: dict[str, Any] = {
        "host": list(url.hosts) or None,
        "port": list(url.ports) or None,
        "user": url.user or None,
        "password": url.password or None,
        "database": url.database or None,
        "timeout": url.connect_timeout or NO_LIMIT,
        "command_timeout": url.socket_timeout or command_timeout,
        "statement_cache_size": url.statement_cache,
        "server_settings": server_settings or None,
    }
    if url.passfile:
        arguments["passfile"] = url.passfile
    if url.target_session_attrs:
        arguments["target_session_attrs"] = url.target_session_attrs
    if url.tls_required:
        arguments["ssl"] = tls_context(url)
    elif url.sslmode == "disable":
        arguments["ssl"] = False
    else:
        # allow and prefer try both ways, which only asyncpg's own modes do; a client
        # certificate reaches them through the DSN, where asyncpg reads it.
        certificate, key = url.client_certificate
        if certificate:
            query = {"sslmode": url.sslmode, "sslcert": certificate, "sslkey": key}
            if url.sslpassword:
                query["sslpassword"] = url.sslpassword
            arguments["dsn"] = "postgresql://?" + urlencode(query)
        else:
            arguments["ssl"] = url.sslmode
    return arguments


async def connect(
    url: PostgresUrl, *, command_timeout: float = COMMAND_TIMEOUT
) -> asyncpg.Connection:
    """A new connection as ``url`` says."""
    return await asyncpg.connect(**connect_arguments(url, command_timeout=command_timeout))


def pool_connect_args(url: PostgresUrl) -> dict[str, Any]:
    """``create_async_engine``'s ``connect_args`` for a pool of ``url``: SQLAlchemy's asyncpg
    dialect calls ``connect`` for each new connection. Behind a transaction pooler each
    prepared statement gets a name of its own: a server connection that served another
    client may hold one of the same name."""

    async def new_connection(**_ignored: Any) -> asyncpg.Connection:
        return await connect(url)

    args: dict[str, Any] = {
        "async_creator_fn": new_connection,
        "prepared_statement_cache_size": url.statement_cache,
    }
    if url.pgbouncer:
        args["prepared_statement_name_func"] = _unique_statement_name
    return args


def _unique_statement_name() -> str:
    return f"__service_{uuid.uuid4().hex}__"
