"""How Inngest looks to one relay: delivering, or in an outage.

Flaky is not down: a failed request (refused, reset, timeout, 5xx, 429) costs only the rows it
carried, which wait out a short backoff of their own while the other workers go on sending.
Only ``OUTAGE_AFTER`` failed requests in a row, with no success between them, make an outage
(a window short enough that a real outage is seen within a few seconds, long enough that an
Event API failing half its requests is almost never taken for a dead one: five in a row at a
50% failure rate is one run in 32). In an outage the relay stops claiming batches and probes
with one event at a time, at intervals growing from ``PROBE_FIRST`` to ``RELAY_PROBE_MAX``; the
first request that Inngest answers (2xx or a 400 about an event) ends it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.config import RelaySettings
from service.metrics import Metrics

log = logging.getLogger(__name__)

OUTAGE_AFTER = 5
PROBE_FIRST = 1.0  # seconds between the first probes; doubled after each failed one


@dataclass
class Outage:
    """An outage as this relay saw it."""

    started_at: int  # epoch ms of the failure that made it one
    started_mono: float
    error: str  # the failure that made it one
    probes: int = 0  # failed probes so far
    retry_after: bool = False  # a failure named its own time (Retry-After): keep to it

    def probe_interval(self, probe_max: float) -> float:
        """Seconds between probes after ``probes`` failed ones: 1, 2, 4, ... at most the max."""
        return min(probe_max, PROBE_FIRST * 2.0 ** min(self.probes, 30))


class Health:
    """Counts the relay's failed requests in a row; says when they make an outage and when
    the outage ended. The workers of a relay share one."""

    def __init__(self, settings: RelaySettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self.failures_in_a_row = 0
        self.outage: Outage | None = None
        self._ended: Outage | None = None

    @property
    def in_outage(self) -> bool:
        return self.outage is not None

    def failed(self, error: str, retry_after: float | None, now: int, mono: float) -> None:
        """A request failed for a reason that is Inngest's, not the events'."""
        self.failures_in_a_row += 1
        if self.outage is not None:
            self.outage.retry_after |= retry_after is not None
            return
        if self.failures_in_a_row >= OUTAGE_AFTER:
            self.outage = Outage(now, mono, error, retry_after=retry_after is not None)
            self._metrics.outage.set(1)
            log.warning(
                "Inngest failed %d requests in a row (%s): outage; the relay now probes with one "
                "event at a time, at most %.0fs apart, and leaves the other rows as they are",
                self.failures_in_a_row,
                error,
                self._settings.probe_max,
                extra={"action": "relay.outage"},
            )

    def answered(self) -> None:
        """Inngest answered a request (it took the events, or refused one of them), this
        relay's or, during an outage, another relay's probe."""
        self.failures_in_a_row = 0
        if self.outage is not None:
            self._ended, self.outage = self.outage, None
            self._metrics.outage.set(0)

    def probe_failed(self) -> None:
        """The probe did not get through: the next one waits longer."""
        if self.outage is not None:
            self.outage.probes += 1

    def take_ended(self) -> Outage | None:
        """The outage that just ended, once (one worker reports it and brings retries forward)."""
        ended, self._ended = self._ended, None
        return ended
