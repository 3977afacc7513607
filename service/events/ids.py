"""The clock of events: milliseconds since the epoch."""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Milliseconds since the epoch: the unit of every time column and of the event's ts."""
    return time.time_ns() // 1_000_000
