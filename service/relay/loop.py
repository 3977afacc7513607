"""The relay loop: wait for work, claim a batch under a lease, deliver it, record the outcome.

``Relay.run`` keeps ``RELAY_CONCURRENCY`` batches in flight (the loop waits on round trips, not
on the CPU) until its stop event is set; each worker then finishes and records the batch it
holds. The in-process relay of ``service serve`` is ``relay_context``; ``service relay`` runs
the same loop in a process of its own (``service.relay.worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ConfigError, Settings
from service.errors import DatabaseUnavailable
from service.metrics import Metrics
from service.relay.backoff import backoff_ceiling
from service.relay.inngest_client import InngestClient, SendResult, user_agent
from service.relay.rules import Deliverer
from service.store import idempotency, outbox, outbox_admin
from service.store.engine import now_ms

log = logging.getLogger(__name__)

RECORD_RETRIES = 5
OUTAGE_PAUSE_MAX = 30.0  # seconds: how long an outage may hold a relay back between probes
HOUSEKEEPING_INTERVAL = 60.0


def new_relay_id() -> str:
    """Names a relay in ``locked_by``: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def require_event_key(settings: Settings) -> None:
    """A relay outside dev mode cannot deliver without a key: refuse to start."""
    if not settings.inngest.event_key and not settings.inngest.dev_mode:
        raise ConfigError(
            "INNGEST_EVENT_KEY",
            "required to deliver events (or set INNGEST_DEV=1 for a dev server)",
        )


async def wait_any(*aws: asyncio.Future[object] | asyncio.Task[object]) -> None:
    """Return as soon as one of ``aws`` is done, cancelling the others."""
    _, pending = await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


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
    ) -> None:
        self.settings = settings.relay
        self._request_timeout = settings.inngest.request_timeout
        self.engine = engine
        self.relay_id = relay_id or new_relay_id()
        self.wake = wake or asyncio.Event()
        self._rng = rng or random.Random()
        self._deliverer = Deliverer(client, self.settings, metrics, self._rng)
        self._paused_until = 0.0  # monotonic time; set while Inngest refuses or fails
        self._auth_failures = 0
        self._outage_failures = 0
        self._outage_retry_after = False
        self._claims = 0
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
        tasks.append(asyncio.create_task(self._housekeeping(stop), name="relay-housekeeping"))
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
        if await self._wait_while_paused(stop):
            return
        self.wake.clear()
        # Each claim has a lease of its own: a sibling worker that re-claims rows after this
        # lease ran out is not mistaken for this one when the outcomes are recorded.
        self._claims += 1
        lease = f"{self.relay_id}/{self._claims}"
        claimed = time.monotonic()
        try:
            rows = await outbox.claim(
                self.engine,
                lease,
                self.settings.batch_size,
                int(self.settings.lease_seconds * 1000),
                now_ms(),
            )
        except DatabaseUnavailable as exc:
            log.error("claim failed: %s", exc, extra={"action": "relay.claim_failed"})
            await self._sleep(stop, self.settings.poll_interval)
            return
        if not rows:
            await self._idle(stop)
            return
        await self._deliver(lease, rows, claimed)

    async def _deliver(self, lease: str, rows: list[outbox.ClaimedRow], claimed: float) -> None:
        send_until = claimed + self.settings.lease_seconds - self._request_timeout
        delivery = await self._deliverer.deliver(rows, self._auth_pause_ms(), send_until)
        # Shielded, and awaited by ``run`` on a stop: a sent batch is always recorded.
        recording = asyncio.ensure_future(self._record(lease, delivery.outcome))
        self._recording.add(recording)
        recording.add_done_callback(self._recording.discard)
        await asyncio.shield(recording)
        if delivery.unauthorized is not None:
            self._pause_for_key(delivery.unauthorized)
        elif delivery.transient is not None and not delivery.outcome.delivered:
            self._pause_for_outage(delivery.transient)
        elif delivery.outcome.delivered:
            self._auth_failures = 0
            if self._outage_failures:
                await self._recovered()

    async def _record(self, lease: str, outcome: outbox.BatchOutcome) -> None:
        """Write the outcome, retrying through a short database outage; if it stays down, the
        lease runs out and another relay sends the rows again under the same ids (Inngest
        drops the repeats)."""
        for attempt in range(1, RECORD_RETRIES + 1):
            try:
                await outbox.record(self.engine, lease, outcome, now_ms())
                return
            except DatabaseUnavailable as exc:
                log.error(
                    "recording a batch failed (try %d): %s",
                    attempt,
                    exc,
                    extra={"action": "relay.record_failed"},
                )
                if attempt < RECORD_RETRIES:
                    await asyncio.sleep(min(2**attempt * 0.05, 2.0))

    def _auth_pause_ms(self) -> int:
        s = self.settings
        pause = backoff_ceiling(self._auth_failures + 1, max(s.backoff_base, 1.0), s.backoff_max)
        return int(pause * 1000)

    def _pause_for_key(self, result: SendResult) -> None:
        pause = self._auth_pause_ms() / 1000
        self._auth_failures += 1
        self._paused_until = time.monotonic() + pause
        log.error(
            "Inngest refused the event key (%s); no event is dead-lettered, the relay retries "
            "in %.0fs: check INNGEST_EVENT_KEY",
            result.error,
            pause,
            extra={"action": "relay.unauthorized"},
        )

    def _pause_for_outage(self, result: SendResult) -> None:
        """Inngest is failing: hold every worker back, or each new event would cost a claim, a
        failed request and a record (and, on SQLite, the write lock the API needs)."""
        s = self.settings
        self._outage_failures += 1
        self._outage_retry_after |= result.retry_after is not None
        ceiling = backoff_ceiling(
            self._outage_failures, s.backoff_base, min(s.backoff_max, OUTAGE_PAUSE_MAX)
        )
        pause = max(self._rng.uniform(0, ceiling), min(result.retry_after or 0.0, OUTAGE_PAUSE_MAX))
        self._paused_until = max(self._paused_until, time.monotonic() + pause)
        if self._outage_failures == 1:
            log.warning(
                "Inngest is failing (%s); the relay backs off",
                result.error,
                extra={"action": "relay.outage"},
            )

    async def _recovered(self) -> None:
        """A batch went through after an outage: send the rows waiting out their backoff now
        rather than each at its own time."""
        streak, self._outage_failures = self._outage_failures, 0
        if self._outage_retry_after:
            # Inngest named its own time for the rows it turned away: keep to it.
            self._outage_retry_after = False
            return
        try:
            count = await outbox.expedite_retries(self.engine, now_ms())
        except DatabaseUnavailable as exc:
            log.error(
                "expediting retries failed: %s", exc, extra={"action": "relay.expedite_failed"}
            )
            return
        log.info(
            "Inngest accepts events again after %d failed requests; %d retries brought forward",
            streak,
            count,
            extra={"action": "relay.recovered"},
        )
        self.wake.set()

    async def _wait_while_paused(self, stop: asyncio.Event) -> bool:
        remaining = self._paused_until - time.monotonic()
        if remaining <= 0:
            return False
        await self._sleep(stop, remaining)
        return True

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a wake-up, the next due row, the poll interval or the stop."""
        timeout = self.settings.poll_interval
        with contextlib.suppress(DatabaseUnavailable):
            due = await outbox.next_due_at(self.engine)
            if due is not None:
                # At least a moment: a due row another relay is claiming right now is not ours.
                timeout = min(timeout, max(0.01, (due - now_ms()) / 1000))
        await wait_any(
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(asyncio.sleep(timeout)),
        )

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """Apply the retention settings and drop expired idempotency keys now and then."""
        while not stop.is_set():
            try:
                await outbox_admin.apply_retention(self.engine, self.settings)
                await idempotency.purge_expired(self.engine)
            except DatabaseUnavailable as exc:
                log.error("retention failed: %s", exc, extra={"action": "relay.retention_failed"})
            except Exception:  # the loop's boundary: housekeeping must not stop delivery
                log.exception("housekeeping failed", extra={"action": "relay.retention_failed"})
            await self._sleep(stop, HOUSEKEEPING_INTERVAL)


@contextlib.asynccontextmanager
async def inngest_client(settings: Settings) -> AsyncIterator[InngestClient]:
    """An Inngest client over its own HTTP session, closed on exit."""
    connector = aiohttp.TCPConnector(limit=max(4, settings.relay.concurrency * 2))
    async with aiohttp.ClientSession(
        connector=connector, headers={"user-agent": user_agent()}
    ) as session:
        yield InngestClient(settings.inngest, session)
