"""``service relay``: the relay in a process of its own, several of which may share a database.

It runs the relay with its housekeeping beside it, wakes on PostgreSQL's NOTIFY from each
insert (the backend's ``listen``; polling is the fallback, and SQLite's only way), serves
``/metrics`` and ``/health`` on ``RELAY_METRICS_PORT`` (0 turns that off), and stops on SIGTERM
or SIGINT after recording the batches in flight; a second signal exits at once (the leases
give the rows back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.errors import ServiceError
from service.heap import freeze_startup_heap
from service.metrics import Metrics
from service.relay.loop import Relay, inngest_client, run_relay
from service.store import schema_version
from service.store.backend import backend_of
from service.store.engine import create_engine

log = logging.getLogger(__name__)


class MetricsPortUnavailable(ServiceError):
    """The relay's /metrics port cannot be bound (another relay on this host has it)."""


# Adds routes to the metrics port's application (the console, with CONSOLE_ON_RELAY), given
# the relay's engine; the command line passes it, so that a relay loads no HTTP face otherwise.
MetricsExtension = Callable[[web.Application, AsyncEngine], None]


async def run_relay_process(settings: Settings, extend: MetricsExtension | None = None) -> None:
    """Run one relay until a signal; raises ``SchemaNotCurrent`` on an old schema."""
    stop = asyncio.Event()
    _install_signal_handlers(stop, asyncio.current_task())
    engine = create_engine(settings)
    metrics = Metrics()
    wake = asyncio.Event()
    try:
        await schema_version.ensure_at_head(engine)
        async with (
            inngest_client(settings) as client,
            backend_of(engine).listen(wake) as listener,
            _metrics_server(settings, metrics, engine, extend),
        ):
            freeze_startup_heap()
            relay = Relay(settings, engine, client, metrics, wake=wake, listener=listener)
            await run_relay(relay, stop)
    finally:
        await engine.dispose()


def _install_signal_handlers(stop: asyncio.Event, main: asyncio.Task[object] | None) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            log.info(
                "%s: finishing the batches in flight",
                signal.Signals(signum).name,
                extra={"action": "relay.stopping"},
            )
            stop.set()
        elif main is not None:
            log.warning("second signal: exiting now", extra={"action": "relay.abort"})
            main.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


@contextlib.asynccontextmanager
async def _metrics_server(
    settings: Settings, metrics: Metrics, engine: AsyncEngine, extend: MetricsExtension | None
) -> AsyncIterator[None]:
    """``/metrics`` and ``/health`` of this relay process, and what ``extend`` adds."""
    port = settings.relay.metrics_port
    if port == 0:
        if extend is not None:
            log.warning(
                "RELAY_METRICS_PORT is 0: nothing more is served on it (CONSOLE_ON_RELAY)",
                extra={"action": "relay.no_metrics_port"},
            )
        yield
        return

    async def metrics_page(_request: web.Request) -> web.Response:
        return await metrics.page(engine)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/health", health)
    if extend is not None:
        extend(app, engine)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.relay.metrics_host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise MetricsPortUnavailable(
            f"RELAY_METRICS_PORT {port}: {exc.strerror or exc} "
            "(give each relay on a host its own port, or 0 for none)"
        ) from exc
    try:
        yield
    finally:
        await runner.cleanup()
