"""The delivery rules: send a claimed batch to Inngest and decide what becomes of each row.

2xx delivers; a 400 delivers the accepted prefix, buries the refused event and sends the rest
again; a size refusal splits the batch (an event too large on its own is buried); 401/403
hands every row back untouched and pauses the relay; 429, 5xx and network failures reschedule
with backoff until ``RELAY_MAX_ATTEMPTS``, then bury.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from service.config import RelaySettings
from service.metrics import Metrics
from service.relay.backoff import gives_up, next_retry_delay
from service.relay.inngest_client import InngestClient, SendResult, SendStatus
from service.store.engine import now_ms
from service.store.outbox import BatchOutcome, Burial, ClaimedRow, Retry

log = logging.getLogger(__name__)


def by_environment(rows: Sequence[ClaimedRow]) -> list[list[ClaimedRow]]:
    """The rows grouped by their Inngest environment, in order: one request goes to one."""
    groups: dict[str | None, list[ClaimedRow]] = {}
    for row in rows:
        groups.setdefault(row.env, []).append(row)
    return list(groups.values())


def split_by_size(
    rows: Sequence[ClaimedRow], max_count: int, max_bytes: int
) -> Iterator[list[ClaimedRow]]:
    """Consecutive requests of at most ``max_count`` events and ``max_bytes`` bytes (an event
    larger than ``max_bytes`` travels alone: Inngest decides whether it is too large)."""
    chunk: list[ClaimedRow] = []
    size = 2  # the array's brackets
    for row in rows:
        row_size = len(row.payload) + 1
        if chunk and (len(chunk) >= max_count or size + row_size > max_bytes):
            yield chunk
            chunk, size = [], 2
        chunk.append(row)
        size += row_size
    if chunk:
        yield chunk


@dataclass
class Delivery:
    """The outcome of one claimed batch, and the failure that cut it short, if any."""

    outcome: BatchOutcome
    unauthorized: SendResult | None = None
    transient: SendResult | None = None


class Deliverer:
    """Applies the delivery rules to claimed rows, one request at a time."""

    def __init__(
        self,
        client: InngestClient,
        settings: RelaySettings,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._rng = rng or random.Random()

    async def deliver(
        self, rows: Sequence[ClaimedRow], auth_pause_ms: int, send_until: float
    ) -> Delivery:
        """Send ``rows`` request by request; a request is started only before ``send_until``
        (monotonic time, the lease's end less a request's timeout), so no row is sent after
        its lease could have passed to another relay: the rest are handed back, due now."""
        s = self._settings
        outcome = BatchOutcome()
        queue = deque(
            chunk
            for group in by_environment(rows)
            for chunk in split_by_size(group, s.batch_size, s.batch_max_bytes)
        )
        while queue:
            if time.monotonic() > send_until:
                self._release(outcome, [row for later in queue for row in later], now_ms())
                break
            chunk = queue.popleft()
            result = await self._send(chunk)
            self._delivered(outcome, chunk[: result.accepted])
            rest = chunk[result.accepted :]
            if result.status is SendStatus.OK or not rest:
                continue
            if result.status is SendStatus.PARTIAL:
                # Inngest stopped at the refused event; the ones after it were never looked at.
                self._bury(outcome, rest[0], result.error)
                if rest[1:]:
                    queue.appendleft(rest[1:])
            elif result.status is SendStatus.TOO_LARGE:
                if len(rest) == 1:
                    self._bury(outcome, rest[0], f"too large for Inngest: {result.error}")
                else:
                    half = len(rest) // 2
                    queue.extendleft([rest[half:], rest[:half]])
            else:
                untouched = [row for later in queue for row in later]
                now = now_ms()
                if result.status is SendStatus.UNAUTHORIZED:
                    self._release(outcome, [*rest, *untouched], now + auth_pause_ms)
                    return Delivery(outcome, unauthorized=result)
                self._reschedule(outcome, rest, result, now)
                # Rows not yet sent keep their attempts and wait as long as the first retry.
                first_retry = min((r.at for r in outcome.retries), default=now)
                self._release(outcome, untouched, first_retry)
                return Delivery(outcome, transient=result)
        return Delivery(outcome)

    async def _send(self, chunk: list[ClaimedRow]) -> SendResult:
        started = time.perf_counter()
        # A chunk never mixes environments (``by_environment``); splits keep it so.
        result = await self._client.send([row.payload for row in chunk], env=chunk[0].env)
        self._metrics.send_seconds.observe(time.perf_counter() - started)
        self._metrics.attempts.labels(result.status.value).inc()
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
        now = now_ms()
        outcome.delivered.extend(row.seq for row in rows)
        self._metrics.delivered.inc(len(rows))
        for row in rows:
            self._metrics.delivery_delay.observe(max(0, now - row.created_at) / 1000)

    def _bury(self, outcome: BatchOutcome, row: ClaimedRow, error: str) -> None:
        outcome.burials.append(Burial(row.seq, error))
        self._metrics.buried.inc()
        log.error(
            "event %s is dead after %d attempts: %s",
            row.id,
            row.attempts + 1,
            error,
            extra={"action": "relay.buried", "event_id": row.id},
        )

    def _reschedule(
        self, outcome: BatchOutcome, rows: Sequence[ClaimedRow], result: SendResult, now: int
    ) -> None:
        s = self._settings
        for row in rows:
            attempts = row.attempts + 1
            if gives_up(attempts, s.max_attempts):
                self._bury(outcome, row, result.error)
                continue
            delay = next_retry_delay(
                attempts, result.retry_after, s.backoff_base, s.backoff_max, self._rng
            )
            outcome.retries.append(Retry(row.seq, now + int(delay * 1000), result.error))

    @staticmethod
    def _release(outcome: BatchOutcome, rows: Sequence[ClaimedRow], until: int) -> None:
        outcome.released.extend(row.seq for row in rows)
        outcome.released_until = until
