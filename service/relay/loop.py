"""The relay loop: wait for work, claim a batch under a lease, deliver it, record the outcome.

``Relay.run`` keeps ``RELAY_CONCURRENCY`` batches in flight (the loop waits on round trips, not
on the CPU) until its stop event is set; each worker then finishes and records the batch it
holds. While Inngest refuses the key or rate-limits, or in an outage (``health``), the workers
stop claiming batches, and in an outage one of them probes (``probing``). ``run_relay`` runs a
relay with its ``housekeeping`` beside it: the in-process relay of ``service serve`` (a cleanup
context of ``service.http.app``) and ``service relay`` (``service.relay.worker``) both do. Every
reading of time, and every wait, goes through the relay's ``clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.errors import DatabaseUnavailable
from service.metrics import Metrics
from service.relay.clock import Clock, SystemClock, sleep_unless
from service.relay.deliverer import Deliverer
from service.relay.health import Health, KeyNews
from service.relay.housekeeping import Housekeeping
from service.relay.inngest_client import InngestClient, user_agent
from service.relay.leased_batch import LeasedBatch
from service.relay.probing import Prober
from service.store import deliveries, delivery_state
from service.store.backends.base import POLLING, Listener
from service.store.outcomes import BatchOutcome

__all__ = ["Relay", "inngest_client", "new_relay_id", "run_relay"]

log = logging.getLogger(__name__)

RECORD_RETRIES = 5
# How soon an idle relay looks again while writers are committing: doubled each time, up to
# RECHECK_MAX (or the poll interval), so that an app's long transaction costs a query a second.
RECHECK_FIRST = 0.0025
RECHECK_MAX = 1.0


def new_relay_id() -> str:
    """Names a relay in ``locked_by``: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Relay:
    """Delivers the outbox of one database; several relays may share it."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        client: InngestClient,
        metrics: Metrics,
        *,
        wake: asyncio.Event | None = None,
        relay_id: str | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        listener: Listener = POLLING,
    ) -> None:
        self.settings = settings.relay
        self._request_timeout = settings.inngest.request_timeout
        self.engine = engine
        self.relay_id = relay_id or new_relay_id()
        self.wake = wake or asyncio.Event()
        self.clock = clock or SystemClock()
        self._listener = listener
        self.health = Health(self.settings, metrics, self.clock)
        rng = rng or random.Random()
        self._deliverer = Deliverer(client, self.settings, metrics, self.health, self.clock, rng)
        self._prober = Prober(
            self.settings,
            engine,
            self.health,
            self.clock,
            self.wake,
            claim_first=lambda stop: self._claim(stop, 1, early=True),
            deliver=self._deliver,
        )
        self._claims = 0
        self._recheck = RECHECK_FIRST
        # An operator's pause, as last read, and when (the clock's monotonic time).
        self._paused_by: str | None = None
        self._pause_read_at = float("-inf")
        self._recording: set[asyncio.Future[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; the batches in flight are finished and recorded."""
        log.info(
            "relay %s started (%d workers)",
            self.relay_id,
            self.settings.concurrency,
            extra={"action": "relay.started"},
        )
        tasks = [
            asyncio.create_task(self._worker(stop), name=f"relay-worker-{n}")
            for n in range(self.settings.concurrency)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Outcomes being written when the workers were cancelled: let them land.
            await asyncio.gather(*self._recording, return_exceptions=True)
        log.info("relay %s stopped", self.relay_id, extra={"action": "relay.stopped"})

    async def _worker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._work_once(stop)
            except Exception:
                # The loop's boundary: whatever went wrong, the relay keeps delivering.
                log.exception("relay worker failed", extra={"action": "relay.worker_failed"})
                await self._sleep(stop, self.settings.poll_interval)

    async def _work_once(self, stop: asyncio.Event) -> None:
        if await self._operator_paused():
            # Until the resume's wake-up (PostgreSQL's NOTIFY), or the next look.
            wait = max(self.settings.poll_interval, delivery_state.PAUSE_CHECK_INTERVAL)
            await sleep_unless(self.clock, wait, self.wake, stop)
            self._pause_read_at = float("-inf")
            return
        if paused := self.health.paused_for():
            await self._sleep(stop, paused)
            return
        if self.health.in_outage:
            await self._prober.probe_once(stop)
            return
        self.wake.clear()
        batch = await self._claim(stop, self.settings.batch_size)
        if batch is None:
            return
        if not batch.rows:
            await self._idle(stop)
            return
        await self._deliver(batch)

    async def _operator_paused(self) -> bool:
        """Whether an operator paused delivery, read at most once a ``PAUSE_CHECK_INTERVAL``
        (a database that fails the read leaves the last answer standing)."""
        now = self.clock.monotonic()
        if now - self._pause_read_at >= delivery_state.PAUSE_CHECK_INTERVAL:
            self._pause_read_at = now
            with contextlib.suppress(DatabaseUnavailable):
                state = await delivery_state.read_state(self.engine)
                paused_by = None if state.paused_at is None else state.paused_by or "an operator"
                if paused_by != self._paused_by:
                    self._log_pause(paused_by)
        return self._paused_by is not None

    def _log_pause(self, paused_by: str | None) -> None:
        if paused_by is not None:
            log.warning(
                "delivery paused by %s: this relay claims nothing until it is resumed",
                paused_by,
                extra={"action": "relay.paused"},
            )
        else:
            log.info("delivery resumed", extra={"action": "relay.resumed"})
        self._paused_by = paused_by

    async def _claim(
        self, stop: asyncio.Event, limit: int, *, early: bool = False
    ) -> LeasedBatch | None:
        """Lease up to ``limit`` due rows (``early``: the next to fall due, even if not due
        yet); None (after a pause) when the database failed."""
        # Each claim has a lease of its own: a sibling worker that re-claims rows after this
        # lease ran out is not mistaken for this one when the outcomes are recorded.
        self._claims += 1
        lease = f"{self.relay_id}/{self._claims}"
        claimed_at = self.clock.monotonic()
        lease_ms = int(self.settings.lease_seconds * 1000)
        try:
            now = self.clock.now_ms()
            rows = await deliveries.claim(self.engine, lease, limit, lease_ms, now, early=early)
        except DatabaseUnavailable as exc:
            log.error("claim failed: %s", exc, extra={"action": "relay.claim_failed"})
            await self._sleep(stop, self.settings.poll_interval)
            return None
        return LeasedBatch(lease, rows, claimed_at)

    async def _deliver(self, batch: LeasedBatch) -> None:
        """Send a leased batch, record the outcome, and act on what it says of Inngest."""
        send_until = batch.claimed_at + self.settings.lease_seconds - self._request_timeout
        outcome = await self._deliverer.deliver(batch.rows, send_until)
        # Shielded, and awaited by ``run`` on a stop: a sent batch is always recorded.
        recording = asyncio.ensure_future(self._record(batch.lease, outcome))
        self._recording.add(recording)
        recording.add_done_callback(self._recording.discard)
        await asyncio.shield(recording)
        if ended := self.health.take_ended():
            await self._prober.recovered(ended)
        if news := self.health.take_key_news():
            await self._share_key_news(news)

    async def _share_key_news(self, news: KeyNews) -> None:
        """Record a refused or accepted key for the console (advisory: a failed write is let go)."""
        with contextlib.suppress(DatabaseUnavailable):
            if news.refused_at is not None:
                await delivery_state.key_refused(self.engine, news.refused_at, news.error)
            else:
                await delivery_state.key_accepted(self.engine)

    async def _record(self, lease: str, outcome: BatchOutcome) -> None:
        """Write the outcome, retrying through a short database outage; if it stays down, the
        lease runs out and another relay sends the rows again under the same ids (Inngest
        drops the repeats)."""
        for attempt in range(1, RECORD_RETRIES + 1):
            try:
                await deliveries.record(self.engine, lease, outcome, self.clock.now_ms())
                return
            except DatabaseUnavailable as exc:
                log.error(
                    "recording a batch failed (try %d): %s",
                    attempt,
                    exc,
                    extra={"action": "relay.record_failed"},
                )
                if attempt < RECORD_RETRIES:
                    await self.clock.sleep(min(2**attempt * 0.05, 2.0))

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a wake-up, the next due row, the poll interval or the stop."""
        async with self._listener.waiting() as may_wait:
            if not may_wait:
                # Writers are committing rows right now: look again in a moment (growing up to
                # the poll interval while an app's long transaction stays open).
                longest = min(self.settings.poll_interval, RECHECK_MAX)
                self._recheck = min(longest, self._recheck * 2)
                await sleep_unless(self.clock, self._recheck, self.wake, stop)
                return
            self._recheck = RECHECK_FIRST
            # Looked at once waiting: rows committed before are seen here, and writers from
            # now on wake this relay.
            timeout = self.settings.poll_interval
            with contextlib.suppress(DatabaseUnavailable):
                due = await deliveries.next_due_at(self.engine, self.clock.now_ms())
                if due is not None:
                    # At least a moment: a due row another relay claims right now is not ours.
                    timeout = min(timeout, max(0.01, (due - self.clock.now_ms()) / 1000))
            await sleep_unless(self.clock, timeout, self.wake, stop)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds`` of the relay's clock, or until ``stop`` is set."""
        await sleep_unless(self.clock, seconds, stop)


async def run_relay(relay: Relay, stop: asyncio.Event) -> None:
    """Run ``relay`` with its database's housekeeping beside it, on the relay's clock, until
    ``stop`` is set."""
    housekeeping = Housekeeping(relay.settings, relay.engine, relay.clock)
    await asyncio.gather(relay.run(stop), housekeeping.run(stop))


@contextlib.asynccontextmanager
async def inngest_client(settings: Settings) -> AsyncIterator[InngestClient]:
    """An Inngest client over its own HTTP session, closed on exit."""
    # A connection for every request that may be in flight: a request waiting for one would
    # spend its timeout in the pool's queue.
    relay = settings.relay
    connector = aiohttp.TCPConnector(limit=max(4, relay.concurrency * relay.requests_in_flight))
    async with aiohttp.ClientSession(
        connector=connector, headers={"user-agent": user_agent()}
    ) as session:
        yield InngestClient(settings.inngest, session)
