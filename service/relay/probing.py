"""What a relay does in an outage: probe Inngest with one event at a time, in turns that every
relay of the database shares, and bring everything back to full speed when a probe gets
through.

One worker of the relay probes; the others wait for the outage to end. Before each probe the
relay asks the database for the probe's turn (``store.probe_slot``): the turn goes to one
relay per interval, however many there are, and a probe that got through ends the outage for
all of them (the others see it at their next turn, at most ``RELAY_PROBE_MAX`` later). Every
other pending row stays as it is: its attempts and its ``next_attempt_at`` are not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import RelaySettings
from service.errors import DatabaseUnavailable
from service.relay.clock import Clock, sleep_unless
from service.relay.health import Health, Outage
from service.relay.leased_batch import LeasedBatch
from service.store import deliveries, delivery_state, outbox_stats, probe_slot

__all__ = ["Prober"]

log = logging.getLogger(__name__)

# Lease the row that falls due first, due or not; None when the database failed (after a wait).
ClaimFirst = Callable[[asyncio.Event], Awaitable[LeasedBatch | None]]
# Send a leased batch and record what became of it.
Deliver = Callable[[LeasedBatch], Awaitable[None]]


class Prober:
    """Probes for one relay; its workers share it."""

    def __init__(
        self,
        settings: RelaySettings,
        engine: AsyncEngine,
        health: Health,
        clock: Clock,
        wake: asyncio.Event,
        *,
        claim_first: ClaimFirst,
        deliver: Deliver,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._health = health
        self._clock = clock
        self._wake = wake
        self._claim_first = claim_first
        self._deliver = deliver
        self._probing = asyncio.Lock()
        self._back = asyncio.Event()  # set (and replaced) when an outage ends

    async def probe_once(self, stop: asyncio.Event) -> None:
        """One step of the outage: wait for the probe's turn, or probe, or learn it is over."""
        outage = self._health.outage
        if outage is None:
            return
        if not outage.shared:
            # For the console: since when, and why, the relays deliver nothing.
            with contextlib.suppress(DatabaseUnavailable):
                await delivery_state.outage_began(self._engine, outage.started_at, outage.error)
                outage.shared = True
        if self._probing.locked():
            # Another worker of this relay probes: wait for the outage to end.
            await sleep_unless(self._clock, self._settings.probe_max, stop, self._back)
            return
        async with self._probing:
            await self._probe(outage, stop)

    async def _probe(self, outage: Outage, stop: asyncio.Event) -> None:
        now = self._clock.now_ms()
        interval = outage.probe_interval(self._settings.probe_max)
        try:
            turn = await probe_slot.take_turn(self._engine, now, int(interval * 1000))
        except DatabaseUnavailable as exc:
            log.error("probe turn failed: %s", exc, extra={"action": "relay.claim_failed"})
            await sleep_unless(self._clock, self._settings.poll_interval, stop)
            return
        if turn.recovered_at is not None and turn.recovered_at >= outage.started_at:
            self._health.answered()  # another relay's probe got through
            if ended := self._health.take_ended():
                await self.recovered(ended, by_this_relay=False)
            return
        if not turn.ours:
            await sleep_unless(self._clock, max(0.01, (turn.next_at - now) / 1000), stop)
            return
        # The row that falls due first, due or not: a probe must not wait for a row's backoff
        # (up to RELAY_BACKOFF_MAX), or recovery would wait as long.
        self._wake.clear()  # as before any claim: a wake-up from now on is news
        batch = await self._claim_first(stop)
        if batch is None:
            return
        if not batch.rows:
            # Nothing pending: nothing to probe with until an event comes.
            await sleep_unless(self._clock, interval, stop, self._wake)
            return
        await self._deliver(batch)
        if self._health.in_outage:
            self._health.probe_failed()
            # The turn is ours until ``next_at``: wait for it here rather than ask again.
            wait = max(0.01, (turn.next_at - self._clock.now_ms()) / 1000)
            await sleep_unless(self._clock, wait, stop)

    async def recovered(self, outage: Outage, *, by_this_relay: bool = True) -> None:
        """The outage is over: bring the waiting retries forward (unless Inngest named its own
        time for them), tell the other relays, wake every worker, and say so in the log."""
        now = self._clock.now_ms()
        brought_forward = 0
        try:
            if by_this_relay:
                await probe_slot.record_recovery(self._engine, now)
                if not outage.retry_after:
                    brought_forward = await deliveries.expedite_retries(self._engine, now)
            waiting = (await outbox_stats.gauge_snapshot(self._engine)).pending
        except DatabaseUnavailable as exc:
            log.error("recovery failed: %s", exc, extra={"action": "relay.expedite_failed"})
            waiting = -1
        lasted = self._clock.monotonic() - outage.started_mono
        log.info(
            "Inngest accepts events again after an outage of %.1fs (%s); %d events waiting, "
            "%d retries brought forward",
            lasted,
            "this relay's probe" if by_this_relay else "another relay's probe",
            waiting,
            brought_forward,
            extra={
                "action": "relay.recovered",
                "outage_seconds": round(lasted, 3),
                "events_waiting": waiting,
            },
        )
        back, self._back = self._back, asyncio.Event()
        back.set()
        self._wake.set()
