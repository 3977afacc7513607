"""``expires`` as each adapter stores it, turned into seconds since the epoch (UTC), whatever
the time zone of the database's session or of this machine; and the kind of a column's
declared type, for the start-up check.

A date and time without a zone is UTC wall time (Prisma's and Drizzle's ``timestamp``,
MySQL's ``DATETIME``): it is never read as local time. A number counts milliseconds (or
seconds when the layout says so); a string of digits is TypeORM's milliseconds; other text is
ISO 8601 (Kysely's on SQLite) or Sequelize's ``YYYY-MM-DD HH:MM:SS.SSS +00:00``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import types

from service.http.app_sessions.presets import DATETIME, NUMBER, TEXT

__all__ = ["UnreadableExpires", "column_kind", "epoch_seconds"]

DIGITS = re.compile(r"[+-]?\d+(\.\d+)?")
# Sequelize on SQLite: a space between the time and its offset, which fromisoformat refuses.
SPACED_OFFSET = re.compile(r"(.*\d) ?([+-]\d\d:?\d\d|Z)")


class UnreadableExpires(ValueError):
    """A row's ``expires`` is no point in time the service can read."""


def epoch_seconds(value: object, *, in_seconds: bool = False) -> float:
    """Seconds since the epoch of a stored ``expires``; ``in_seconds``: numbers count seconds,
    not milliseconds."""
    if isinstance(value, datetime):
        return _aware(value).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if isinstance(value, bool) or value is None:
        raise UnreadableExpires(f"not a point in time: {type(value).__name__}")
    if isinstance(value, int | float | Decimal):
        return float(value) if in_seconds else float(value) / 1000
    if isinstance(value, str):
        text = value.strip()
        if DIGITS.fullmatch(text):
            return float(text) if in_seconds else float(text) / 1000
        return _aware(_parse_text(text)).timestamp()
    raise UnreadableExpires(f"not a point in time: {type(value).__name__}")


def _aware(moment: datetime) -> datetime:
    # A moment without a zone is UTC wall time: never this machine's local time.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_text(text: str) -> datetime:
    if (spaced := SPACED_OFFSET.fullmatch(text)) is not None:
        text = spaced[1] + ("+00:00" if spaced[2] == "Z" else spaced[2])
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UnreadableExpires("text that is not an ISO 8601 date and time") from None


def column_kind(declared: types.TypeEngine[object]) -> str | None:
    """How a column of this declared type stores a point in time: a date and time, text or a
    number; None for anything else (a blob, a boolean...)."""
    if isinstance(declared, types.DateTime | types.Date):
        return DATETIME
    if isinstance(declared, types.String):
        return TEXT
    if isinstance(declared, types.Integer | types.Numeric):
        return NUMBER
    return None
