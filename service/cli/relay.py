"""``service relay``: the relay in a process of its own.

The module declares the command; the relay, the store and aiohttp are imported by the command
when it runs, so that ``service --help`` and the other commands never load them."""

from __future__ import annotations

import contextlib
import dataclasses

import click

from service.cli.common import load_settings, require
from service.config import require_event_key


@click.command()
@click.option("--metrics-port", type=int, help="Port of /metrics and /health (0: off).")
def relay(metrics_port: int | None) -> None:
    """Deliver the outbox to Inngest until SIGTERM or SIGINT (several may run at once)."""
    settings = load_settings()
    if metrics_port is not None:
        settings = settings.replace(
            relay=dataclasses.replace(settings.relay, metrics_port=metrics_port)
        )
    require(require_event_key, settings)
    # What relaying needs, loaded once the settings hold (see the module's docstring).
    import asyncio

    from service.cli.database import run
    from service.relay.worker import run_relay_process

    extend = None
    if settings.console.on_relay:
        from service.http.console.app import on_relay_port

        extend = on_relay_port(settings)
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        run(run_relay_process(settings, extend))
