"""The relay loop: wait for work, claim a batch under a lease, deliver it, record the outcome.

``Relay.run`` keeps ``RELAY_CONCURRENCY`` batches in flight (the loop waits on round trips, not
on the CPU) until its stop event is set; each worker then finishes and records the batch it
holds. In an outage (``health``) the workers stop claiming batches and one of them probes
(``probing``). The in-process relay of ``service serve`` is a cleanup context of
``service.http.app``; ``service relay`` runs the same loop in a process of its own
(``service.relay.worker``). Every reading of time goes through ``clock``.
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

from service.config import ConfigError, Settings
from service.errors import DatabaseUnavailable
from service.metrics import Metrics
from service.relay.backoff import backoff_ceiling
from service.relay.clock import Clock, SystemClock, sleep_unless
from service.relay.health import Health
from service.relay.inngest_client import InngestClient, SendResult, user_agent
from service.relay.probing import Prober
from service.relay.rules import Deliverer
from service.store import idempotency, outbox, outbox_admin

log = logging.getLogger(__name__)

RECORD_RETRIES = 5
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
    ) -> None:
        self.settings = settings.relay
        self._request_timeout = settings.inngest.request_timeout
        self.engine = engine
        self.relay_id = relay_id or new_relay_id()
        self.wake = wake or asyncio.Event()
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self.health = Health(self.settings, metrics)
        self._deliverer = Deliverer(
            client, self.settings, metrics, self.health, self.clock, self._rng
        )
        self._prober = Prober(self, self.health)
        self._paused_until = 0.0  # clock.monotonic(); set by a wrong key or a 429
        self._auth_failures = 0
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
                await self.sleep(stop, self.settings.poll_interval)

    async def _work_once(self, stop: asyncio.Event) -> None:
        if await self._wait_while_paused(stop):
            return
        if self.health.in_outage:
            await self._prober.probe_once(stop)
            return
        self.wake.clear()
        claim = await self.claim(stop, self.settings.batch_size)
        if claim is None:
            return
        lease, rows, claimed = claim
        if not rows:
            await self._idle(stop)
            return
        await self.deliver(lease, rows, claimed)

    async def claim(
        self, stop: asyncio.Event, limit: int, *, early: bool = False
    ) -> tuple[str, list[outbox.ClaimedRow], float] | None:
        """Lease up to ``limit`` due rows (``early``: the next to fall due, even if not due
        yet): the lease's name, the rows and the claim's time; None (after a pause) when the
        database failed."""
        # Each claim has a lease of its own: a sibling worker that re-claims rows after this
        # lease ran out is not mistaken for this one when the outcomes are recorded.
        self._claims += 1
        lease = f"{self.relay_id}/{self._claims}"
        claimed = self.clock.monotonic()
        lease_ms = int(self.settings.lease_seconds * 1000)
        try:
            now = self.clock.now_ms()
            rows = await outbox.claim(self.engine, lease, limit, lease_ms, now, early=early)
        except DatabaseUnavailable as exc:
            log.error("claim failed: %s", exc, extra={"action": "relay.claim_failed"})
            await self.sleep(stop, self.settings.poll_interval)
            return None
        return lease, rows, claimed

    async def deliver(self, lease: str, rows: list[outbox.ClaimedRow], claimed: float) -> None:
        """Send claimed rows, record the outcome, and act on what it says of Inngest."""
        send_until = claimed + self.settings.lease_seconds - self._request_timeout
        delivery = await self._deliverer.deliver(rows, self._auth_pause_ms(), send_until)
        # Pauses first, before the awaits of recording: the other workers must not start
        # another request in the meantime.
        if delivery.unauthorized is not None:
            self._pause_for_key(delivery.unauthorized)
        else:
            self._auth_failures = 0
        if delivery.rate_limited is not None:
            self._pause(delivery.rate_limited)
        # Shielded, and awaited by ``run`` on a stop: a sent batch is always recorded.
        recording = asyncio.ensure_future(self._record(lease, delivery.outcome))
        self._recording.add(recording)
        recording.add_done_callback(self._recording.discard)
        await asyncio.shield(recording)
        if ended := self.health.take_ended():
            await self._prober.recovered(ended)

    async def _record(self, lease: str, outcome: outbox.BatchOutcome) -> None:
        """Write the outcome, retrying through a short database outage; if it stays down, the
        lease runs out and another relay sends the rows again under the same ids (Inngest
        drops the repeats)."""
        for attempt in range(1, RECORD_RETRIES + 1):
            try:
                await outbox.record(self.engine, lease, outcome, self.clock.now_ms())
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

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)

    def _pause_for_key(self, result: SendResult) -> None:
        pause = self._auth_pause_ms() / 1000
        self._auth_failures += 1
        self._pause(pause)
        log.error(
            "Inngest refused the event key (%s); no event is dead-lettered, the relay retries "
            "in %.0fs: check INNGEST_EVENT_KEY",
            result.error,
            pause,
            extra={"action": "relay.unauthorized"},
        )

    async def _wait_while_paused(self, stop: asyncio.Event) -> bool:
        remaining = self._paused_until - self.clock.monotonic()
        if remaining <= 0:
            return False
        await self.sleep(stop, remaining)
        return True

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a wake-up, the next due row, the poll interval or the stop."""
        timeout = self.settings.poll_interval
        with contextlib.suppress(DatabaseUnavailable):
            due = await outbox.next_due_at(self.engine)
            if due is not None:
                # At least a moment: a due row another relay is claiming right now is not ours.
                timeout = min(timeout, max(0.01, (due - self.clock.now_ms()) / 1000))
        await sleep_unless(self.clock, timeout, self.wake, stop)

    async def sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds`` of the relay's clock, or until ``stop`` is set."""
        await sleep_unless(self.clock, seconds, stop)

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
            await self.sleep(stop, HOUSEKEEPING_INTERVAL)


@contextlib.asynccontextmanager
async def inngest_client(settings: Settings) -> AsyncIterator[InngestClient]:
    """An Inngest client over its own HTTP session, closed on exit."""
    connector = aiohttp.TCPConnector(limit=max(4, settings.relay.concurrency * 2))
    async with aiohttp.ClientSession(
        connector=connector, headers={"user-agent": user_agent()}
    ) as session:
        yield InngestClient(settings.inngest, session)
