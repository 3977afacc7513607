"""Running a command's work: its coroutine, with domain and database errors as one line, and
an engine checked to be at the migrations' head. The commands import it when they run, never
for their help."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from service.cli.common import fail
from service.config import Settings
from service.errors import DatabaseUnavailable, ServiceError
from service.store import schema_version
from service.store.engine import create_engine

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; domain and database errors become one line and exit 1
    (2 when the connection's settings are wrong: TLS that does not fit the server)."""
    try:
        return asyncio.run(coroutine)
    except DatabaseUnavailable as exc:
        fail(str(exc), code=2 if exc.misconfigured else 1)
    except ServiceError as exc:
        fail(str(exc))


async def with_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Open an engine, check the schema is at head, run ``work(engine)``, dispose."""
    engine = create_engine(settings)
    try:
        await schema_version.ensure_at_head(engine)
        return await work(engine)
    finally:
        await engine.dispose()
