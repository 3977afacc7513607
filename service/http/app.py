"""The aiohttp application: ``create_app`` wires the middlewares, the routes and one cleanup
context per resource (sessions, engine, group commit, the in-process relay); it does no I/O."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from service.config import Settings
from service.http import event_api, routes
from service.http.app_sessions.reader import open_app_sessions
from service.http.auth import RotatingCookieStorage
from service.http.console import app as console
from service.http.group_commit import OutboxWriter
from service.http.keys import (
    APP_SESSIONS,
    ENGINE,
    METRICS,
    NEW_WORK,
    NEXTAUTH,
    SESSIONS,
    SETTINGS,
    WRITER,
)
from service.http.nextauth import NextAuthReader
from service.http.problems import problem_middleware
from service.http.server import header_limit
from service.http.server_log import quiet_malformed_requests
from service.metrics import Metrics, http_metrics_middleware
from service.relay.loop import Relay, inngest_client, run_relay
from service.store.backend import backend_of
from service.store.engine import create_engine

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, relay: bool = False) -> web.Application:
    """Build the application; resources are opened by its cleanup contexts, not here. Serve it
    with ``service.http.server.ServiceRunner``, whose parser takes the headers this app's
    limit allows (``MAX_HEADER_BYTES``; bodies: ``MAX_BODY_BYTES``, 413 beyond)."""
    quiet_malformed_requests()
    metrics = Metrics()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            http_metrics_middleware(metrics),
            header_limit(settings.max_header_bytes),
            problem_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[NEW_WORK] = asyncio.Event()
    app[METRICS] = metrics
    app[NEXTAUTH] = NextAuthReader(
        settings.nextauth,
        database_sessions=settings.nextauth_database.enabled,
        max_token_chars=settings.max_header_bytes,
    )
    app.cleanup_ctx.append(_sessions)
    app.cleanup_ctx.append(_app_sessions)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_writer)
    if relay:
        app.cleanup_ctx.append(_relay)
    app.on_startup.append(_announce_event_api)
    app.router.add_post("/api", routes.post_sync)
    app.router.add_post("/e/{key}", event_api.post_events)
    app.router.add_get("/api/settings", routes.get_settings)
    app.router.add_put("/api/settings", routes.put_settings)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/ready", routes.ready)
    app.router.add_get("/metrics", routes.metrics_page)
    app.router.add_get("/openapi.yaml", routes.openapi_spec)
    console.install(app, settings, where="service serve")
    return app


async def _announce_event_api(app: web.Application) -> None:
    settings = app[SETTINGS]
    event_api.announce(settings.event_api, settings.is_production)


async def _sessions(app: web.Application) -> AsyncIterator[None]:
    # At start-up, not in create_app: in development the secret is read from (or made in) var/.
    app[SESSIONS] = RotatingCookieStorage(app[SETTINGS])
    yield


async def _app_sessions(app: web.Application) -> AsyncIterator[None]:
    # The Next.js app's database, when its sessions are there: checked before serving.
    async with open_app_sessions(app[SETTINGS], app[NEXTAUTH]) as sessions:
        app[APP_SESSIONS] = sessions
        yield


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS])
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def _writer(app: web.Application) -> AsyncIterator[None]:
    new_work, accepted = app[NEW_WORK], app[METRICS].accepted

    def committed(count: int) -> None:
        accepted.inc(count)
        new_work.set()

    settings = app[SETTINGS]
    store = backend_of(app[ENGINE]).open_batch_store()
    await store.open()
    writer = OutboxWriter(store, int(settings.idempotency_ttl * 1000), on_commit=committed)
    writer.start()
    app[WRITER] = writer
    yield
    await writer.close()


async def _relay(app: web.Application) -> AsyncIterator[None]:
    """The in-process relay of ``service serve`` with its housekeeping, woken by each commit
    of this process."""
    settings = app[SETTINGS]
    stop = asyncio.Event()
    engine, wake = app[ENGINE], app[NEW_WORK]
    # Woken by this process's commits, and (PostgreSQL) by other writers': apps in their own
    # transactions, other replicas.
    async with (
        inngest_client(settings) as client,
        backend_of(engine).listen(wake) as listener,
    ):
        relay = Relay(settings, engine, client, app[METRICS], wake=wake, listener=listener)
        task = asyncio.create_task(run_relay(relay, stop), name="relay")
        yield
        stop.set()
        try:
            # A batch in flight may make several requests; its lease bounds how long it may take.
            await asyncio.wait_for(task, timeout=settings.relay.lease_seconds)
        except TimeoutError:
            log.error("relay did not stop in time", extra={"action": "relay.stop_timeout"})
