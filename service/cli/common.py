"""What every command shares: settings from the environment, one-line failures with the
right exit status, and an engine checked to be at the migrations' head."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click

from service.config import ConfigError, Settings
from service.errors import ServiceError
from service.logs import configure_logging
from service.store import schema
from service.store.engine import create_engine

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    """One readable line on stderr, then exit (1: failure, 2: usage or configuration)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings() -> Settings:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fail(str(exc), code=2)
    configure_logging(settings)
    return settings


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; domain and database errors become one line and exit 1."""
    try:
        return asyncio.run(coroutine)
    except ServiceError as exc:
        fail(str(exc))


async def with_engine(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open an engine, check the schema is at head, run ``work(engine)``, dispose."""
    engine = create_engine(settings)
    try:
        await schema.ensure_at_head(engine)
        return await work(engine)
    finally:
        await engine.dispose()
