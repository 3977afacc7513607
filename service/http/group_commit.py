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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.errors import DatabaseUnavailable
from service.store import outbox
from service.store.batch_store import BatchStore
from service.store.idempotency import Claim

log = logging.getLogger(__name__)

MAX_BATCH = 1000


def accepted_body(event_id: str) -> str:
    """The answer to an enqueued event: the seed's body plus the event's id."""
    # Formatted by hand: the id is a UUID, and json.dumps costs more than the rest of it.
    return f'{{"success": "true", "id": "{event_id}"}}'


@dataclass(frozen=True)
class Accepted:
    """What ``POST /api`` answers: the body, and whether it repeats an earlier answer."""

    body: str
    replayed: bool = False


class _Request:
    """One caller waiting for its event to commit."""

    __slots__ = ("claim", "done", "idempotency", "ts", "user")

    def __init__(
        self,
        user: dict[str, Any] | None,
        ts: int,
        idempotency: tuple[str, str] | None,
        done: asyncio.Future[Accepted],
    ) -> None:
        self.user, self.ts, self.idempotency, self.done = user, ts, idempotency, done
        self.claim: Claim | None = None


class SyncEventWriter:
    """Writes ``openapi/app.sync`` events in group commits; ``submit`` returns once committed."""

    def __init__(
        self,
        store: BatchStore,
        idempotency_ttl_ms: int,
        on_commit: Callable[[int], None] = lambda _count: None,
    ) -> None:
        self._store = store
        self._ttl_ms = idempotency_ttl_ms
        self._on_commit = on_commit
        self._queue: list[_Request] = []
        self._in_flight: dict[tuple[str, str], asyncio.Future[Accepted]] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sync-event-writer")

    async def submit(
        self, user: dict[str, Any] | None, ts: int, idempotency: tuple[str, str] | None = None
    ) -> Accepted:
        """Queue an event accepted at ``ts`` (epoch ms); answer once it has committed.

        ``idempotency`` is ``(caller, key)``: a repeat of a key answers the first response.
        Raises ``DatabaseUnavailable`` when the transaction failed or the writer is stopping.
        """
        if self._closing or self._task is None:
            raise DatabaseUnavailable("the service is stopping")
        if idempotency is not None and idempotency in self._in_flight:
            first = await asyncio.shield(self._in_flight[idempotency])
            return Accepted(first.body, replayed=True)
        done: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        if idempotency is not None:
            self._in_flight[idempotency] = done
            done.add_done_callback(lambda _f: self._in_flight.pop(idempotency, None))
        self._queue.append(_Request(user, ts, idempotency, done))
        self._wake.set()
        if idempotency is not None:
            # Repeats wait on this future: a leader that goes away must not cancel it.
            return await asyncio.shield(done)
        # A caller that goes away cancels only its own future: the batch is written anyway.
        return await done

    async def close(self) -> None:
        """Stop taking events, write what is queued, end the writer task, close the store."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._store.close()

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
        ids = outbox.new_ids(len(batch))
        for request, event_id in zip(batch, ids, strict=True):
            if request.idempotency is not None:
                caller, key = request.idempotency
                body, expires = accepted_body(event_id), request.ts + self._ttl_ms
                request.claim = Claim(caller, key, event_id, body, request.ts, expires)
        claims = [r.claim for r in batch if r.claim is not None]
        events = [
            outbox.event_shell(r.user, r.ts, event_id=event_id)
            for r, event_id in zip(batch, ids, strict=True)
        ]
        try:
            held = await self._store.write(claims, events)
        except Exception as error:
            self._fail(batch, error)
            return
        for request, event_id in zip(batch, ids, strict=True):
            if request.done.done():
                continue
            if request.claim is not None and request.claim in held:
                request.done.set_result(Accepted(held[request.claim], replayed=True))
            else:
                request.done.set_result(Accepted(accepted_body(event_id)))
        with contextlib.suppress(Exception):
            self._on_commit(len(batch) - len(held))

    @staticmethod
    def _fail(batch: list[_Request], error: Exception) -> None:
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
