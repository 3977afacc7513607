"""Times as people and log pipelines read them: ISO 8601 UTC, and short spans; and moments as
people give them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from service.config import parse_duration

RELATIVE = re.compile(r"\d+(\.\d+)?(ms|s|m|h|d)")


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC (``2026-11-23T10:00:00.123Z``)."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_age(seconds: float) -> str:
    """``42s``, ``3m 12s``, ``5h 2m``, ``4d 3h``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{secs}s"


def parse_moment(raw: str, now: int) -> int:
    """A moment as epoch ms: an ISO 8601 time (UTC unless it says otherwise) or a duration
    before ``now`` (``2h``, ``7d``); ``ValueError`` with the reason for anything else."""
    text = raw.strip()
    if RELATIVE.fullmatch(text.lower()):
        return now - int(parse_duration(text) * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is neither a duration ago (30m, 2h, 7d) nor an ISO 8601 time "
            "(2026-11-23T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
