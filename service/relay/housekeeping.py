"""Housekeeping beside a relay: the retention settings applied and expired idempotency keys
dropped, every ``HOUSEKEEPING_INTERVAL``, in a task of its own so that it never holds up a
delivery (and a delivery never holds it up)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import RelaySettings
from service.errors import DatabaseUnavailable
from service.relay.clock import Clock, SystemClock, sleep_unless
from service.store import idempotency, outbox_admin

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 60.0


class Housekeeping:
    """Purges what the settings no longer keep, for one database."""

    def __init__(self, settings: RelaySettings, engine: AsyncEngine, clock: Clock | None = None):
        self._settings = settings
        self._engine = engine
        self._clock = clock or SystemClock()

    async def run(self, stop: asyncio.Event) -> None:
        """Purge now and every ``HOUSEKEEPING_INTERVAL`` until ``stop`` is set."""
        while not stop.is_set():
            await self.once()
            await sleep_unless(self._clock, HOUSEKEEPING_INTERVAL, stop)

    async def once(self) -> None:
        """Apply the retention settings and drop expired idempotency keys."""
        try:
            await outbox_admin.apply_retention(self._engine, self._settings)
            await idempotency.purge_expired(self._engine)
        except DatabaseUnavailable as exc:
            log.error("retention failed: %s", exc, extra={"action": "relay.retention_failed"})
        except Exception:  # the task's boundary: housekeeping must go on, and never stop delivery
            log.exception("housekeeping failed", extra={"action": "relay.retention_failed"})
