"""``service serve``: the HTTP API, and unless --no-relay the relay, in this process.

The module declares the command; the HTTP face, the store and aiohttp are imported by the
command when it runs, so that ``service --help`` and the other commands never load them."""

from __future__ import annotations

import logging
from typing import Any

import click

from service.cli.common import fail, load_settings, require
from service.config import (
    INNGEST_DEV_ORIGIN,
    ConfigError,
    Settings,
    require_event_key,
    require_session_secret,
)
from service.errors import CannotListen
from service.heap import freeze_startup_heap

log = logging.getLogger(__name__)


@click.command()
@click.option("--host", help="Interface to listen on (default: HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: PORT or 8080).")
@click.option("--no-relay", is_flag=True, help="Do not deliver the outbox in this process.")
def serve(host: str | None, port: int | None, no_relay: bool) -> None:
    """Run the HTTP API (and, unless --no-relay, the relay) until SIGTERM or SIGINT."""
    settings = load_settings()
    settings = settings.replace(host=host or settings.host, port=port or settings.port)
    require(require_session_secret, settings)
    if not no_relay:
        require(require_event_key, settings)
    # What serving needs, loaded once the settings hold (see the module's docstring).
    from service.cli.database import run, with_engine
    from service.http.app import create_app
    from service.http.app_sessions.reader import check_app_database
    from service.http.server import ensure_can_listen, run_server

    try:
        ensure_can_listen(settings.host, settings.port)
    except CannotListen as exc:
        fail(str(exc), code=2 if exc.misconfigured else 1)
    run(with_engine(settings, _nothing))  # refuse to start on an old schema or no database
    try:  # and on tables of the Next.js app that are not its adapter's
        run(check_app_database(settings))
    except ConfigError as exc:
        fail(str(exc), code=2)
    app = create_app(settings, relay=not no_relay)
    app.on_startup.append(_freeze_startup_heap)  # after the resources' contexts
    _log_serving(settings, relay=not no_relay)
    try:
        run_server(
            app,
            settings.host,
            settings.port,
            max_header_bytes=settings.max_header_bytes,
            shutdown_timeout=10,
        )
    except CannotListen as exc:
        fail(str(exc), code=2 if exc.misconfigured else 1)


async def _freeze_startup_heap(_app: object) -> None:
    freeze_startup_heap()


async def _nothing(_engine: Any) -> None:
    return None


def _log_serving(settings: Settings, *, relay: bool) -> None:
    """Say where the API listens and where its events go: the Inngest origin (never the key,
    which is in the path) or, with --no-relay, that other processes deliver them."""
    inngest = settings.inngest
    if not relay:
        delivery = "no relay in this process (--no-relay): `service relay` delivers the outbox"
    elif inngest.dev_mode:
        delivery = f"the relay delivers to Inngest's dev server at {inngest.origin}"
        if inngest.origin == INNGEST_DEV_ORIGIN:
            delivery += " (start it with `npx inngest-cli@latest dev`; its UI shows the events)"
    else:
        delivery = f"the relay delivers to Inngest at {inngest.origin}"
    fields: dict[str, object] = {"action": "serve.started", "relay": relay}
    if relay:
        fields["inngest_origin"] = inngest.origin
    log.info("serving on http://%s:%d; %s", settings.host, settings.port, delivery, extra=fields)
