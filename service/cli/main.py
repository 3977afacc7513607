"""The ``service`` command: serve, relay, db, settings, session, and the ``outbox`` group
(``service.cli.outbox``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from service.cli.common import fail, load_settings, run, with_engine
from service.cli.outbox import outbox as outbox_group
from service.config import (
    INNGEST_DEV_ORIGIN,
    ConfigError,
    Settings,
    require_event_key,
    require_session_secret,
)
from service.events.ids import now_ms
from service.events.payload import new_event
from service.heap import freeze_startup_heap
from service.http.auth import issue_cookie
from service.json_reader import MalformedJson, parse_json
from service.store import app_settings, migrations, outbox, schema
from service.store.engine import create_engine, describe_db_error, reading, transaction

log = logging.getLogger(__name__)


async def _freeze_startup_heap(_app: object) -> None:
    freeze_startup_heap()


async def _nothing(_engine: Any) -> None:
    return None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Sync app settings to Inngest through a transactional outbox."""


@main.command()
@click.option("--host", help="Interface to listen on (default: HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: PORT or 8080).")
@click.option("--no-relay", is_flag=True, help="Do not deliver the outbox in this process.")
def serve(host: str | None, port: int | None, no_relay: bool) -> None:
    """Run the HTTP API (and, unless --no-relay, the relay) until SIGTERM or SIGINT."""
    from aiohttp import web

    from service.http.app import HTTP_LIMITS, create_app

    settings = load_settings()
    settings = settings.replace(host=host or settings.host, port=port or settings.port)
    require(require_session_secret, settings)
    if not no_relay:
        require(require_event_key, settings)
    run(with_engine(settings, _nothing))  # refuse to start on an old schema or no database
    app = create_app(settings, relay=not no_relay)
    app.on_startup.append(_freeze_startup_heap)  # after the resources' contexts
    _log_serving(settings, relay=not no_relay)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=None,
        shutdown_timeout=10,
        handle_signals=True,
        # Passed through to aiohttp's request handler (the parser's limits).
        max_line_size=HTTP_LIMITS["max_line_size"],
        max_field_size=HTTP_LIMITS["max_field_size"],
    )


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


@main.command()
@click.option("--metrics-port", type=int, help="Port of /metrics and /health (0: off).")
def relay(metrics_port: int | None) -> None:
    """Deliver the outbox to Inngest until SIGTERM or SIGINT (several may run at once)."""
    from service.relay.worker import run_relay_process

    settings = load_settings()
    if metrics_port is not None:
        settings = settings.replace(
            relay=dataclasses.replace(settings.relay, metrics_port=metrics_port)
        )
    require(require_event_key, settings)
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        run(run_relay_process(settings))


def require(check: Callable[[Settings], None], settings: Settings) -> None:
    """Run a start-up check of the settings; a refusal is one line and exit 2."""
    try:
        check(settings)
    except ConfigError as exc:
        fail(str(exc), code=2)


@main.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the database (creates the SQLite file if needed)."""
    settings = load_settings()
    try:
        migrations.upgrade(settings.database_url, revision)
    except Exception as exc:  # alembic and the drivers raise many kinds; the line says which
        fail(f"migration failed: {describe_db_error(exc)}")
    click.echo(f"database at {revision}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the migrations' head."""
    settings = load_settings()

    async def current() -> str | None:
        engine = create_engine(settings)
        try:
            return await schema.current_revision(engine)
        finally:
            await engine.dispose()

    revision = run(current())
    state = "at head" if revision == schema.HEAD else "behind head: run `service db upgrade`"
    click.echo(f"current: {revision or 'none'} (head: {schema.HEAD}, {state})")


@main.group("settings")
def settings_group() -> None:
    """Read and change the app settings document."""


@settings_group.command("show")
def settings_show() -> None:
    """Print the app settings as JSON."""
    settings = load_settings()

    async def show(engine: Any) -> dict[str, Any]:
        async with reading(engine) as conn:
            return await app_settings.read(conn)

    click.echo(json.dumps(run(with_engine(settings, show)), indent=2, sort_keys=True))


def _parse_value(raw: str) -> object:
    """A JSON value when VALUE parses as one (42, true, {"a": 1}), else the plain string."""
    try:
        return parse_json(raw.encode("utf-8", "surrogateescape"), "VALUE")
    except MalformedJson:
        return raw


async def _store(
    settings: Settings, change: Callable[[Any, int], Awaitable[dict[str, Any]]], sync: bool
) -> str | None:
    async def work(engine: Any) -> str | None:
        async with transaction(engine) as conn:
            at = now_ms()
            document = await change(conn, at)
            if not sync:
                return None
            event = new_event(document, None, at)
            await outbox.add(conn, [event])
            return event.id

    return await with_engine(settings, work)


sync_option = click.option(
    "--sync/--no-sync", default=True, show_default=True, help="Enqueue an app.sync event."
)


@settings_group.command("set")
@click.argument("key")
@click.argument("value")
@sync_option
def settings_set(key: str, value: str, sync: bool) -> None:
    """Set KEY to VALUE (parsed as JSON when it is JSON, else a string)."""
    settings = load_settings()
    parsed = _parse_value(value)
    event_id = run(
        _store(settings, lambda conn, at: app_settings.set_key(conn, key, parsed, at), sync)
    )
    click.echo(f"set {key}" + (f"; enqueued event {event_id}" if event_id else ""))


@settings_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@sync_option
def settings_load(file: Path, sync: bool) -> None:
    """Replace the whole document with the JSON object in FILE (- for stdin)."""
    settings = load_settings()
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        document = parse_json(raw, str(file))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except MalformedJson as exc:
        fail(str(exc))
    if not isinstance(document, dict):
        fail(f"{file} must hold a JSON object")

    async def replace(conn: Any, at: int) -> dict[str, Any]:
        await app_settings.replace(conn, document, at)
        return dict(document)

    event_id = run(_store(settings, replace, sync))
    click.echo(
        f"loaded {len(document)} keys" + (f"; enqueued event {event_id}" if event_id else "")
    )


@main.group()
def session() -> None:
    """Session cookies for callers and scripts."""


@session.command("issue")
@click.option("--user-id", required=True, help="The user's id.")
@click.option("--email", help="The user's email.")
@click.option("--name", help="The user's display name.")
def session_issue(user_id: str, email: str | None, name: str | None) -> None:
    """Print a session cookie value for a user; send it as SESSION_COOKIE_NAME=VALUE."""
    settings = load_settings()
    require(require_session_secret, settings)
    user = {"id": user_id}
    if email:
        user["email"] = email
    if name:
        user["name"] = name
    click.echo(issue_cookie(settings, user))


# `service outbox ...`, in a module of its own.
main.add_command(outbox_group)
