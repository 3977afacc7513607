"""The delivery rules: send a claimed batch to Inngest and decide what becomes of each row.

2xx delivers; a 400 delivers the accepted prefix, buries the refused event and sends the rest
again; a size refusal splits the batch (an event too large on its own is buried); 401/403
hands every row back untouched and pauses the relay (``health``); a 429 hands its rows back
untouched for its ``Retry-After`` and pauses the whole relay as long (a rate limit, not a
verdict on the rows); 5xx and network failures reschedule the rows they carried, with a
backoff of their own, and the batch's other requests go on (flaky is not down) unless the
failures made an outage (``health``). A row is buried for a failure only when it has failed
for longer than ``RELAY_GIVE_UP_AFTER`` since its first failed attempt (or past
``RELAY_MAX_ATTEMPTS``, when set).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from service.config import RelaySettings
from service.metrics import Metrics
from service.relay.backoff import RETRY_AFTER_CEILING, backoff_ceiling, gives_up, next_retry_delay
from service.relay.clock import Clock
from service.relay.health import Health
from service.relay.inngest_client import InngestClient, SendResult, SendStatus
from service.relay.requests import request_headers, requests_of
from service.store.deliveries import ClaimedRow
from service.store.outcomes import BatchOutcome, Burial, Retry
from service.telemetry import delivery_span, record_delivery
from service.timefmt import human_age, iso

__all__ = ["Deliverer"]

log = logging.getLogger(__name__)


class Deliverer:
    """Applies the delivery rules to claimed rows, one request at a time."""

    def __init__(
        self,
        client: InngestClient,
        settings: RelaySettings,
        metrics: Metrics,
        health: Health,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._rng = rng or random.Random()

    async def deliver(self, rows: Sequence[ClaimedRow], send_until: float) -> BatchOutcome:
        """Send ``rows``, up to ``requests_in_flight`` requests at once (a claim of many short
        runs is many requests); a request is started only before ``send_until`` (monotonic
        time, the lease's end less a request's timeout), so no row is sent after its lease
        could have passed to another relay: the rest are handed back, due now. A refused key
        or a rate limit pauses the relay (``health``) as soon as it is answered, and an
        outage stops the batch: from then on no request of it starts, and what the requests
        still in flight hand back (a split, the rest after a refused event) waits too."""
        s = self._settings
        batch = _Batch(BatchOutcome(), deque(requests_of(rows, s.batch_size, s.batch_max_bytes)))
        in_flight: dict[asyncio.Future[SendResult], list[ClaimedRow]] = {}
        try:
            while batch.queue or in_flight:
                if batch.halted_until is not None and batch.queue:
                    self._release(batch.outcome, _rows_of(batch.queue), batch.halted_until)
                    batch.queue.clear()
                while batch.queue and len(in_flight) < s.requests_in_flight:
                    if self._clock.monotonic() > send_until:
                        self._release(batch.outcome, _rows_of(batch.queue), self._clock.now_ms())
                        batch.queue.clear()
                        break
                    chunk = batch.queue.popleft()
                    in_flight[asyncio.ensure_future(self._send(chunk))] = chunk
                if not in_flight:
                    break
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for sent in done:
                    self._settle(batch, in_flight.pop(sent), sent.result())
        finally:
            # Only when cancelled, or on a bug: the requests still out go with the batch, whose
            # rows wait for their lease to run out (then they are sent again, under their ids).
            for sent in in_flight:
                sent.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
        return batch.outcome

    def _settle(self, batch: _Batch, chunk: list[ClaimedRow], result: SendResult) -> None:
        """Apply the rules to one answered request. A refused key, a rate limit or an outage
        halts the batch (the first of them decides how long its rows wait)."""
        outcome, queue = batch.outcome, batch.queue
        self._delivered(outcome, chunk[: result.accepted])
        rest = chunk[result.accepted :]
        if not rest:
            return
        match result.status:
            case SendStatus.PARTIAL:
                # Inngest stopped at the refused event; the ones after it were not looked at.
                self._bury(outcome, rest[0], result.error, result.http_status)
                if rest[1:]:
                    queue.appendleft(rest[1:])
            case SendStatus.TOO_LARGE:
                if len(rest) == 1:
                    error = f"too large for Inngest: {result.error}"
                    self._bury(outcome, rest[0], error, result.http_status)
                else:
                    half = len(rest) // 2
                    queue.extendleft([rest[half:], rest[:half]])
            case SendStatus.UNAUTHORIZED:
                if not batch.paused:  # requests in flight together: one refusal, one pause
                    pause = self._health.key_pause()
                    self._health.key_refused(result.error)
                    batch.pause_until(self._clock.now_ms() + int(pause * 1000))
                self._release(outcome, rest, batch.halted_until or 0)
            case SendStatus.RATE_LIMITED:
                if not batch.paused:
                    pause = self._rate_limit_pause(result)
                    self._health.pause(pause)
                    batch.pause_until(self._clock.now_ms() + int(pause * 1000))
                self._release(outcome, rest, batch.halted_until or 0)
            case SendStatus.TRANSIENT:
                self._reschedule(outcome, rest, result)
                if self._health.in_outage and batch.halted_until is None:
                    # Inngest is down: the rows not yet sent wait as they were, due now.
                    batch.halted_until = self._clock.now_ms()

    def _rate_limit_pause(self, result: SendResult) -> float:
        """How long a 429 holds the relay back: its Retry-After, else a backoff that grows with
        the failures in a row."""
        if result.retry_after is not None and result.retry_after > 0:
            return min(result.retry_after, RETRY_AFTER_CEILING)
        s = self._settings
        return backoff_ceiling(self._health.failures_in_a_row, s.backoff_base, s.probe_max)

    async def _send(self, chunk: list[ClaimedRow]) -> SendResult:
        started = time.perf_counter()
        # A chunk is one request's worth (``requests_of``) or a part of one, which splits keep
        # within one environment, trace context and run: its first row decides the headers.
        headers = request_headers(chunk)
        with delivery_span(len(chunk), headers) as span:
            result = await self._client.send([row.payload for row in chunk], headers)
            record_delivery(span, result.status.value, result.http_status, result.error)
        self._metrics.send_seconds.observe(time.perf_counter() - started)
        self._metrics.attempts.labels(result.status.value).inc()
        if result.status in (SendStatus.TRANSIENT, SendStatus.RATE_LIMITED):
            self._health.failed(result.error, result.retry_after)
        elif result.status is not SendStatus.UNAUTHORIZED:
            self._health.answered()
        if result.status is not SendStatus.UNAUTHORIZED:
            self._health.key_accepted()
        if result.status not in (SendStatus.OK, SendStatus.UNAUTHORIZED):
            log.warning(
                "Inngest took %d of %d events: %s",
                result.accepted,
                len(chunk),
                result.error,
                extra={"action": f"relay.{result.status.value}", "events": len(chunk)},
            )
        return result

    def _delivered(self, outcome: BatchOutcome, rows: Sequence[ClaimedRow]) -> None:
        if not rows:
            return
        now = self._clock.now_ms()
        outcome.delivered.extend(row.seq for row in rows)
        self._metrics.delivered.inc(len(rows))
        for row in rows:
            self._metrics.delivery_delay.observe(max(0, now - row.created_at) / 1000)

    def _bury(
        self, outcome: BatchOutcome, row: ClaimedRow, error: str, status_code: int | None
    ) -> None:
        outcome.burials.append(Burial(row.seq, error, status_code))
        self._metrics.buried.inc()
        log.error(
            "event %s is dead after %d attempts: %s",
            row.id,
            row.attempts + 1,
            error,
            extra={"action": "relay.buried", "event_id": row.id},
        )

    def _reschedule(
        self, outcome: BatchOutcome, rows: Sequence[ClaimedRow], result: SendResult
    ) -> None:
        """Rows a failed request carried: they wait one backoff together, or each is buried
        once it has failed for longer than the time budget."""
        s = self._settings
        now = self._clock.now_ms()
        # The failure is Inngest's, not the rows': the backoff grows with the relay's failures
        # in a row (how down Inngest looks), not with each row's attempts, so that the unlucky
        # rows of a flaky Event API are not parked for minutes. A bad event is a 400: buried.
        # One draw of the jitter for the request: its rows stay one stretch of their run, to
        # be sent again in one request rather than one each.
        delay = next_retry_delay(
            self._health.failures_in_a_row,
            result.retry_after,
            s.backoff_base,
            s.backoff_max,
            self._rng,
        )
        for row in rows:
            attempts = row.attempts + 1
            failing_since = now if row.first_failed_at is None else row.first_failed_at
            if s.give_up_after is not None and now - failing_since >= s.give_up_after * 1000:
                error = _out_of_budget(failing_since, now, attempts, result)
                self._bury(outcome, row, error, result.http_status)
                continue
            if s.max_attempts is not None and gives_up(attempts, s.max_attempts):
                self._bury(outcome, row, result.error, result.http_status)
                continue
            at = now + int(delay * 1000)
            outcome.retries.append(Retry(row.seq, at, result.error, result.http_status))

    @staticmethod
    def _release(outcome: BatchOutcome, rows: Sequence[ClaimedRow], until: int) -> None:
        if not rows:
            return
        outcome.released.extend(row.seq for row in rows)
        # One time for all the rows handed back: the latest of the reasons (a pause outlasts
        # a lease that ran short).
        outcome.released_until = max(outcome.released_until, until)


@dataclass
class _Batch:
    """One claim being delivered: its outcome so far, the requests not yet started, and, once
    a refused key, a rate limit or an outage halted it, when its other rows are due."""

    outcome: BatchOutcome
    queue: deque[list[ClaimedRow]]
    halted_until: int | None = None
    paused: bool = False  # by a refused key or a rate limit (an outage halts without a pause)

    def pause_until(self, until: int) -> None:
        self.paused = True
        self.halted_until = max(self.halted_until or 0, until)


def _rows_of(chunks: deque[list[ClaimedRow]]) -> list[ClaimedRow]:
    return [row for chunk in chunks for row in chunk]


def _out_of_budget(failing_since: int, now: int, attempts: int, result: SendResult) -> str:
    return (
        f"gave up: failing for {human_age((now - failing_since) / 1000)} since "
        f"{iso(failing_since)} ({attempts} attempts, over RELAY_GIVE_UP_AFTER); "
        f"last error: {result.error}"
    )
