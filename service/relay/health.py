"""How Inngest looks to one relay: delivering, paused, or in an outage.

Flaky is not down: a failed request (refused, reset, timeout, 5xx, 429) costs only the rows it
carried, which wait out a short backoff of their own while the other workers go on sending.
Only ``OUTAGE_AFTER`` failed requests in a row, with no success between them, make an outage
(a window short enough that a real outage is seen within a few seconds, long enough that an
Event API failing half its requests is almost never taken for a dead one: five in a row at a
50% failure rate is one run in 32). In an outage the relay stops claiming batches and probes
with one event at a time, at intervals growing from ``PROBE_FIRST`` to ``RELAY_PROBE_MAX``; the
first request that Inngest answers (2xx or a 400 about an event) ends it.

Two answers pause the whole relay instead: a refused event key (401/403), for a backoff that
grows with each refusal in a row until the key is fixed, and a rate limit (429), for as long as
Inngest asked. No worker starts a request while the relay is paused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.config import RelaySettings
from service.metrics import Metrics
from service.relay.backoff import backoff_ceiling
from service.relay.clock import Clock, SystemClock

log = logging.getLogger(__name__)

OUTAGE_AFTER = 5
PROBE_FIRST = 1.0  # seconds between the first probes; doubled after each failed one
KEY_PAUSE_FIRST = 1.0  # seconds of the first pause for a refused key, at least


@dataclass
class Outage:
    """An outage as this relay saw it."""

    started_at: int  # epoch ms of the failure that made it one
    started_mono: float
    error: str  # the failure that made it one
    probes: int = 0  # failed probes so far
    retry_after: bool = False  # a failure named its own time (Retry-After): keep to it
    shared: bool = False  # recorded for every relay to see (``delivery_state``)

    def probe_interval(self, probe_max: float) -> float:
        """Seconds between probes after ``probes`` failed ones: 1, 2, 4, ... at most the max."""
        return min(probe_max, PROBE_FIRST * 2.0 ** min(self.probes, 30))


class Health:
    """Counts the relay's failed requests in a row; says when they make an outage and when
    the outage ended; holds the relay's pause. The workers of a relay share one."""

    def __init__(
        self, settings: RelaySettings, metrics: Metrics, clock: Clock | None = None
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self.failures_in_a_row = 0
        self.outage: Outage | None = None
        self._ended: Outage | None = None
        self.paused_until = 0.0  # the clock's monotonic time; set by a refused key or a 429
        self._key_refusals = 0  # in a row
        # What the relays' shared state has yet to learn of the key (``take_key_news``).
        self._key_news: KeyNews | None = None
        self._key_accepted_once = False

    @property
    def in_outage(self) -> bool:
        return self.outage is not None

    def failed(self, error: str, retry_after: float | None) -> None:
        """A request failed for a reason that is Inngest's, not the events'."""
        self.failures_in_a_row += 1
        if self.outage is not None:
            self.outage.retry_after |= retry_after is not None
            return
        if self.failures_in_a_row >= OUTAGE_AFTER:
            now, mono = self._clock.now_ms(), self._clock.monotonic()
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

    # -- pauses ---------------------------------------------------------------------------------

    def paused_for(self) -> float:
        """Seconds the relay has yet to wait before it may send again."""
        return max(0.0, self.paused_until - self._clock.monotonic())

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a 429's time, or a refused key's)."""
        self.paused_until = max(self.paused_until, self._clock.monotonic() + seconds)

    def key_pause(self) -> float:
        """Seconds the next refusal of the key pauses the relay: a backoff that grows with the
        refusals in a row."""
        s = self._settings
        base = max(s.backoff_base, KEY_PAUSE_FIRST)
        return backoff_ceiling(self._key_refusals + 1, base, s.backoff_max)

    def key_refused(self, error: str) -> None:
        """Inngest refused the event key: pause, loudly; the rows wait untouched."""
        pause = self.key_pause()
        self._key_refusals += 1
        self.pause(pause)
        self._key_news = KeyNews(refused_at=self._clock.now_ms(), error=error)
        log.error(
            "Inngest refused the event key (%s); no event is dead-lettered, the relay retries "
            "in %.0fs: check INNGEST_EVENT_KEY",
            error,
            pause,
            extra={"action": "relay.unauthorized"},
        )

    def key_accepted(self) -> None:
        """A request went through with the key: the next refusal starts the backoff afresh."""
        if self._key_refusals or not self._key_accepted_once:
            # The first time, too: a refusal recorded by a relay gone since is over.
            self._key_news = KeyNews()
            self._key_accepted_once = True
        self._key_refusals = 0

    def take_key_news(self) -> KeyNews | None:
        """What changed of the key since last asked, once: the relay records it for all."""
        news, self._key_news = self._key_news, None
        return news


@dataclass(frozen=True)
class KeyNews:
    """The event key was refused (at, with that error) or, with neither, accepted again."""

    refused_at: int | None = None
    error: str = ""
