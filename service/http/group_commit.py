"""Group commit: the events of concurrent requests share one transaction.

Two kinds of request feed it: ``POST /api`` submits an ``openapi/app.sync`` event whose data
the statement completes with the app settings (``submit_sync``), and ``POST /e/{key}``
submits an app's complete events, all or nothing (``submit_events``). Each request waits
until the transaction holding its events has committed, so a 200 still means "durably in the
outbox". One writer task takes whatever queued while the previous commit was running (or
while the store's ``concurrency`` commits were): under load the batches grow by themselves,
and a lone request is written at once without waiting on a timer. A batch reads the app
settings in the same transaction as it inserts, so every sync event carries the settings that
were committed when it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import DatabaseUnavailable
from service.events.ids import now_ms
from service.events.inngest_ids import RunningIds
from service.events.payload import NewEvent, event_shell
from service.events.trace import TraceContext
from service.store.batch_writes import BatchStore, Claim

log = logging.getLogger(__name__)

# Rows per transaction: a full Event API request (Inngest's own limit) fits in one.
MAX_BATCH_ROWS = 5000


def accepted_body(event_id: str) -> str:
    """The answer to an enqueued event: the seed's body plus the event's id, the one Inngest
    files it under."""
    # Formatted by hand: the id is a ULID, and json.dumps costs more than the rest of it.
    return f'{{"success": "true", "id": "{event_id}"}}'


@dataclass(frozen=True)
class Accepted:
    """What ``POST /api`` answers: the body, and whether it repeats an earlier answer."""

    body: str
    replayed: bool = False


class _SyncRequest:
    """One ``POST /api`` caller waiting for its event to commit."""

    __slots__ = ("claim", "done", "idempotency", "trace", "ts", "user")

    def __init__(
        self,
        user: dict[str, Any] | None,
        ts: int,
        idempotency: tuple[str, str] | None,
        trace: TraceContext | None,
        done: asyncio.Future[Accepted],
    ) -> None:
        self.user, self.ts, self.idempotency, self.done = user, ts, idempotency, done
        self.trace = trace
        self.claim: Claim | None = None


class _EventsRequest:
    """One Event API caller waiting for its batch of complete events to commit."""

    __slots__ = ("done", "events")

    def __init__(self, events: Sequence[NewEvent], done: asyncio.Future[None]) -> None:
        self.events, self.done = events, done


class OutboxWriter:
    """Writes the API's events in group commits; each ``submit_*`` returns once committed."""

    def __init__(
        self,
        store: BatchStore,
        idempotency_ttl_ms: int,
        on_commit: Callable[[int], None] = lambda _count: None,
    ) -> None:
        self._store = store
        self._ttl_ms = idempotency_ttl_ms
        self._on_commit = on_commit
        self._syncs: list[_SyncRequest] = []
        self._sends: list[_EventsRequest] = []
        self._in_flight: dict[tuple[str, str], asyncio.Future[Accepted]] = {}
        # Inngest's ids of the events this writer makes: runs that last across its batches.
        self.ids = RunningIds()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-writer")

    def _check_open(self) -> None:
        if self._closing or self._task is None:
            raise DatabaseUnavailable("the service is stopping")

    async def submit_sync(
        self,
        user: dict[str, Any] | None,
        ts: int,
        idempotency: tuple[str, str] | None = None,
        trace: TraceContext | None = None,
    ) -> Accepted:
        """Queue a sync event accepted at ``ts`` (epoch ms); answer once it has committed.

        ``idempotency`` is ``(caller, key)``: a repeat of a key answers the first response.
        ``trace`` is the caller's trace context, sent along to Inngest with the event.
        Raises ``DatabaseUnavailable`` when the transaction failed or the writer is stopping.
        """
        self._check_open()
        if idempotency is not None and idempotency in self._in_flight:
            first = await asyncio.shield(self._in_flight[idempotency])
            return Accepted(first.body, replayed=True)
        done: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        if idempotency is not None:
            self._in_flight[idempotency] = done
            done.add_done_callback(lambda _f: self._in_flight.pop(idempotency, None))
        self._syncs.append(_SyncRequest(user, ts, idempotency, trace, done))
        self._wake.set()
        if idempotency is not None:
            # Repeats wait on this future: a leader that goes away must not cancel it.
            return await asyncio.shield(done)
        # A caller that goes away cancels only its own future: the batch is written anyway.
        return await done

    async def submit_events(self, events: Sequence[NewEvent]) -> None:
        """Queue complete events, to be written together; return once they have committed.
        An event whose id is stored already is a repeat of a committed send: it is left out.
        Raises ``DatabaseUnavailable`` when the transaction failed or the writer is stopping."""
        self._check_open()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sends.append(_EventsRequest(events, done))
        self._wake.set()
        await done

    async def close(self) -> None:
        """Stop taking events, write what is queued, end the writer task, close the store."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._store.close()

    async def _run(self) -> None:
        writing: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            writing.discard(task)
            self._wake.set()  # what queued meanwhile is the next batch

        while True:
            await self._wake.wait()
            self._wake.clear()
            while (self._syncs or self._sends) and len(writing) < self._store.concurrency:
                task = asyncio.create_task(self._write(*self._take()), name="outbox-write")
                writing.add(task)
                task.add_done_callback(finished)
            if self._closing and not writing and not self._syncs and not self._sends:
                return

    def _take(self) -> tuple[list[_SyncRequest], list[_EventsRequest]]:
        """The next batch: at most MAX_BATCH_ROWS rows, or one request larger than that."""
        syncs, self._syncs = self._syncs[:MAX_BATCH_ROWS], self._syncs[MAX_BATCH_ROWS:]
        rows, taken = len(syncs), 0
        for send in self._sends:
            if rows and rows + len(send.events) > MAX_BATCH_ROWS:
                break
            rows += len(send.events)
            taken += 1
        sends, self._sends = self._sends[:taken], self._sends[taken:]
        return syncs, sends

    async def _write(self, syncs: list[_SyncRequest], sends: list[_EventsRequest]) -> None:
        # The next ids of the writer's run: Inngest's ids for them, sent in few requests.
        ids = self.ids.take(len(syncs), now_ms()) if syncs else []
        for request, event_id in zip(syncs, ids, strict=True):
            if request.idempotency is not None:
                caller, key = request.idempotency
                body, expires = accepted_body(event_id), request.ts + self._ttl_ms
                request.claim = Claim(caller, key, event_id, body, request.ts, expires)
        claims = [r.claim for r in syncs if r.claim is not None]
        shells = [
            event_shell(r.user, r.ts, event_id=event_id, trace=r.trace)
            for r, event_id in zip(syncs, ids, strict=True)
        ]
        events = [event for send in sends for event in send.events] if sends else []
        try:
            written = await self._store.write(claims, shells, events)
        except Exception as error:
            self._fail([*syncs, *sends], error)
            return
        held = written.held
        for request, event_id in zip(syncs, ids, strict=True):
            if request.done.done():
                continue
            if request.claim is not None and request.claim in held:
                request.done.set_result(Accepted(held[request.claim], replayed=True))
            else:
                request.done.set_result(Accepted(accepted_body(event_id)))
        for send in sends:
            if not send.done.done():
                send.done.set_result(None)
        with contextlib.suppress(Exception):
            self._on_commit(len(syncs) - len(held) + written.new_events)

    @staticmethod
    def _fail(batch: Sequence[_SyncRequest | _EventsRequest], error: Exception) -> None:
        failure = (
            error
            if isinstance(error, DatabaseUnavailable)
            else DatabaseUnavailable(f"outbox write failed: {type(error).__name__}")
        )
        log.error(
            "outbox write failed for %d requests: %s",
            len(batch),
            failure,
            extra={"action": "ingest.write_failed"},
        )
        for request in batch:
            if not request.done.done():
                request.done.set_exception(failure)
