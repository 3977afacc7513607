"""Pure backoff policy for the relay: how long to wait before the next attempt, and when to stop.

No I/O and no clock: callers add the delay to their own "now". Backoff is exponential with
*full jitter* (a uniform draw between zero and the exponential ceiling), which spreads the
retries of many relays hit by the same outage instead of having them stampede back together.
"""

from __future__ import annotations

import math
import random

RETRY_AFTER_CEILING = 3600.0
"""The longest ``Retry-After`` we honour, in seconds: a server may ask for more than our own
backoff cap, but a buggy or hostile header must not park a row for days."""


def backoff_ceiling(attempts: int, base: float, cap: float) -> float:
    """The upper bound of the jittered delay: ``min(cap, base * 2**(attempts-1))``."""
    if base < 0 or cap < 0:
        raise ValueError("base and cap must not be negative")
    exponent = max(attempts - 1, 0)
    # Any exponent this large is past every sensible cap; checking first keeps ldexp from
    # overflowing (and the int 2**n from growing without bound) when attempts is huge.
    if exponent >= 1024:
        return cap
    try:
        return min(cap, math.ldexp(base, exponent))
    except OverflowError:
        return cap


def backoff_delay(
    attempts: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """A delay drawn uniformly from ``[0, backoff_ceiling(attempts, base, cap)]`` (full jitter)."""
    ceiling = backoff_ceiling(attempts, base, cap)
    uniform = rng.uniform if rng is not None else random.uniform
    return min(ceiling, max(0.0, uniform(0.0, ceiling)))


def next_retry_delay(
    attempts: int,
    retry_after: float | None,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the next attempt.

    The jittered backoff, raised to the server's ``Retry-After`` when it asks for longer. The
    backoff alone never exceeds ``cap``; a ``Retry-After`` is honoured even above ``cap`` (the
    server knows best when it will take traffic again) but never beyond ``RETRY_AFTER_CEILING``.
    """
    delay = backoff_delay(attempts, base, cap, rng)
    if retry_after is not None and retry_after > 0 and not math.isnan(retry_after):
        delay = max(delay, min(retry_after, RETRY_AFTER_CEILING))
    return delay


def gives_up(attempts: int, max_attempts: int) -> bool:
    """True when ``attempts`` already made have used up the ``max_attempts`` allowed."""
    return attempts >= max_attempts
