"""The relay's backoff policy and the reading of a ``Retry-After`` header: pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from service.relay.backoff import (
    RETRY_AFTER_CEILING,
    backoff_ceiling,
    backoff_delay,
    gives_up,
    next_retry_delay,
)
from service.relay.inngest_client import (
    parse_retry_after,
)


def test_parse_retry_after() -> None:
    now = datetime(2025, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-4", now) == 0.0
    assert parse_retry_after("Sun, 23 Nov 2025 12:01:00 GMT", now) == 60.0
    assert parse_retry_after("Sun, 23 Nov 2025 11:00:00 GMT", now) == 0.0  # in the past
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk, now) is None


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    assert [backoff_ceiling(n, 1.0, 600.0) for n in range(1, 12)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        600,
    ]
    assert backoff_ceiling(0, 1.0, 600.0) == 1.0  # no attempt yet: the base


def test_backoff_ceiling_is_monotone_and_survives_huge_attempts() -> None:
    ceilings = [backoff_ceiling(n, 0.25, 300.0) for n in range(1, 3000)]
    assert ceilings == sorted(ceilings)
    assert ceilings[-1] == 300.0
    for huge in (1023, 1024, 1025, 10**6, 10**100):
        assert backoff_ceiling(huge, 1e10, 600.0) == 600.0
        assert 0.0 <= backoff_delay(huge, 1.0, 600.0) <= 600.0


def test_backoff_is_full_jitter_within_bounds() -> None:
    rng = random.Random(42)
    for attempts in (1, 3, 8, 20):
        ceiling = backoff_ceiling(attempts, 1.0, 60.0)
        draws = [backoff_delay(attempts, 1.0, 60.0, rng) for _ in range(2000)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Full jitter: the draws spread over the whole range, not bunched near the ceiling.
        assert min(draws) < 0.05 * ceiling
        assert max(draws) > 0.95 * ceiling
        assert 0.4 * ceiling < sum(draws) / len(draws) < 0.6 * ceiling


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff_delay(5, 1.0, 60.0, random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1


def test_backoff_rejects_negative_parameters() -> None:
    with pytest.raises(ValueError):
        backoff_delay(1, -1.0, 10.0)
    with pytest.raises(ValueError):
        backoff_delay(1, 1.0, -10.0)


def test_next_retry_delay_honours_retry_after() -> None:
    rng = random.Random(1)
    # Without Retry-After: the jittered backoff, never above the cap.
    assert all(0 <= next_retry_delay(50, None, 1.0, 30.0, rng) <= 30.0 for _ in range(500))
    # Retry-After raises the delay, even above the cap...
    assert all(next_retry_delay(1, 45.0, 1.0, 30.0, rng) == 45.0 for _ in range(100))
    assert all(next_retry_delay(3, 2.5, 1.0, 30.0, rng) >= 2.5 for _ in range(100))
    # ...but a shorter Retry-After does not cut the backoff below its draw.
    draws = [next_retry_delay(10, 0.001, 1.0, 30.0, random.Random(s)) for s in range(200)]
    assert max(draws) > 20.0
    # ...and an absurd one is held to the ceiling; nonsense is ignored.
    assert next_retry_delay(1, 10 * 86400.0, 1.0, 30.0, rng) == RETRY_AFTER_CEILING
    assert 0 <= next_retry_delay(1, float("nan"), 1.0, 30.0, rng) <= 1.0
    assert 0 <= next_retry_delay(1, -5.0, 1.0, 30.0, rng) <= 1.0


def test_gives_up() -> None:
    assert not gives_up(0, 3)
    assert not gives_up(2, 3)
    assert gives_up(3, 3)
    assert gives_up(4, 3)
    assert gives_up(1, 1)
