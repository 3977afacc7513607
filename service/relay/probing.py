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
import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import RelaySettings
from service.errors import DatabaseUnavailable
from service.relay.clock import Clock, sleep_unless
from service.relay.health import Health, Outage
from service.store import outbox, outbox_admin, probe_slot

log = logging.getLogger(__name__)


class ProbingRelay(Protocol):
    """The parts of the relay a probe uses."""

    settings: RelaySettings
    engine: AsyncEngine
    clock: Clock
    wake: asyncio.Event

    async def claim(
        self, stop: asyncio.Event, limit: int, *, early: bool = False
    ) -> tuple[str, list[outbox.ClaimedRow], float] | None: ...

    async def deliver(self, lease: str, rows: list[outbox.ClaimedRow], claimed: float) -> None: ...

    async def sleep(self, stop: asyncio.Event, seconds: float) -> None: ...


class Prober:
    """Probes for one relay; its workers share it."""

    def __init__(self, relay: ProbingRelay, health: Health) -> None:
        self._relay = relay
        self._health = health
        self._probing = asyncio.Lock()
        self._back = asyncio.Event()  # set (and replaced) when an outage ends

    async def probe_once(self, stop: asyncio.Event) -> None:
        """One step of the outage: wait for the probe's turn, or probe, or learn it is over."""
        relay, outage = self._relay, self._health.outage
        if outage is None:
            return
        if self._probing.locked():
            # Another worker of this relay probes: wait for the outage to end.
            await sleep_unless(relay.clock, relay.settings.probe_max, stop, self._back)
            return
        async with self._probing:
            now = relay.clock.now_ms()
            interval = outage.probe_interval(relay.settings.probe_max)
            try:
                turn = await probe_slot.take_turn(relay.engine, now, int(interval * 1000))
            except DatabaseUnavailable as exc:
                log.error("probe turn failed: %s", exc, extra={"action": "relay.claim_failed"})
                await relay.sleep(stop, relay.settings.poll_interval)
                return
            if turn.recovered_at is not None and turn.recovered_at >= outage.started_at:
                self._health.answered()  # another relay's probe got through
                if ended := self._health.take_ended():
                    await self.recovered(ended, by_this_relay=False)
                return
            if not turn.ours:
                await relay.sleep(stop, max(0.01, (turn.next_at - now) / 1000))
                return
            # The row that falls due first, due or not: a probe must not wait for a row's
            # backoff (up to RELAY_BACKOFF_MAX), or recovery would wait as long.
            relay.wake.clear()  # as before any claim: a wake-up from now on is news
            claim = await relay.claim(stop, 1, early=True)
            if claim is None:
                return
            if not claim[1]:
                # Nothing pending: nothing to probe with until an event comes.
                await sleep_unless(relay.clock, interval, stop, relay.wake)
                return
            await relay.deliver(*claim)
            if self._health.in_outage:
                self._health.probe_failed()
                # The turn is ours until ``next_at``: wait for it here rather than ask again.
                await relay.sleep(stop, max(0.01, (turn.next_at - relay.clock.now_ms()) / 1000))

    async def recovered(self, outage: Outage, *, by_this_relay: bool = True) -> None:
        """The outage is over: bring the waiting retries forward (unless Inngest named its own
        time for them), tell the other relays, wake every worker, and say so in the log."""
        relay = self._relay
        now = relay.clock.now_ms()
        brought_forward = 0
        try:
            if by_this_relay:
                await probe_slot.record_recovery(relay.engine, now)
                if not outage.retry_after:
                    brought_forward = await outbox.expedite_retries(relay.engine, now)
            waiting = (await outbox_admin.gauge_snapshot(relay.engine)).pending
        except DatabaseUnavailable as exc:
            log.error("recovery failed: %s", exc, extra={"action": "relay.expedite_failed"})
            waiting = -1
        log.info(
            "Inngest accepts events again after an outage of %.1fs (%s); %d events waiting, "
            "%d retries brought forward",
            relay.clock.monotonic() - outage.started_mono,
            "this relay's probe" if by_this_relay else "another relay's probe",
            waiting,
            brought_forward,
            extra={
                "action": "relay.recovered",
                "outage_seconds": round(relay.clock.monotonic() - outage.started_mono, 3),
                "events_waiting": waiting,
            },
        )
        back, self._back = self._back, asyncio.Event()
        back.set()
        relay.wake.set()
