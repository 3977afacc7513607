"""Group commit for ``POST /api``: the events of concurrent requests share one transaction.

Each request waits until the transaction holding its event has committed, so a 200 still means
"durably in the outbox". One writer task takes whatever queued while the previous commit was
running: under load the batches grow by themselves, and a lone request is written at once
without waiting on a timer. A batch reads the app settings in the same transaction as it
inserts, so every event carries the settings that were committed when it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service import app_settings, outbox
from service.db import transaction
from service.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 1000


@dataclass
class _Request:
    user: dict[str, Any] | None
    ts: int
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SyncEventWriter:
    """Writes ``openapi/app.sync`` events in group commits; ``submit`` returns once committed."""

    def __init__(
        self, engine: AsyncEngine, on_commit: Callable[[int], None] = lambda _count: None
    ) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._queue: list[_Request] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sync-event-writer")

    async def submit(self, user: dict[str, Any] | None, ts: int) -> str:
        """Queue an event accepted at ``ts`` (epoch ms); return its id once it has committed.

        Raises ``DatabaseUnavailable`` when its transaction failed or the writer is stopping.
        """
        if self._closing or self._task is None:
            raise DatabaseUnavailable("the service is stopping")
        request = _Request(user, ts)
        self._queue.append(request)
        self._wake.set()
        # Shielded: a caller that goes away must not cancel a batch other callers share.
        await asyncio.shield(request.done)
        return request.id

    async def close(self) -> None:
        """Stop taking events, write what is queued, then end the writer task."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                if self._closing:
                    return
                continue
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            if self._queue or self._closing:
                self._wake.set()
            await self._write(batch)

    async def _write(self, batch: list[_Request]) -> None:
        try:
            async with transaction(self._engine) as conn:
                data_json = await app_settings.read_json(conn)
                await outbox.add(
                    conn,
                    [
                        outbox.new_event_from_json(data_json, r.user, r.ts, event_id=r.id)
                        for r in batch
                    ],
                )
        except Exception as error:
            failure = (
                error
                if isinstance(error, DatabaseUnavailable)
                else DatabaseUnavailable(f"outbox write failed: {type(error).__name__}")
            )
            log.error(
                "outbox write failed for %d events: %s",
                len(batch),
                failure,
                extra={"action": "ingest.write_failed"},
            )
            for request in batch:
                if not request.done.done():
                    request.done.set_exception(failure)
            return
        for request in batch:
            if not request.done.done():
                request.done.set_result(None)
        with contextlib.suppress(Exception):
            self._on_commit(len(batch))
