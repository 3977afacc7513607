"""Which outbox rows an operator means (the CLI's options, the console's filters) as SQL
conditions, and where a page of them ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, or_

from service.errors import InvalidInput
from service.store.deliveries import status_is
from service.store.tables import outbox_events

__all__ = ["Cursor", "EventFilter"]

t = outbox_events


@dataclass(frozen=True)
class EventFilter:
    """Which rows an operator means. Times are epoch ms of ``created_at``: since <= t < until."""

    status: str | None = None
    name: str | None = None
    since: int | None = None
    until: int | None = None
    event_id: str | None = None  # the event's id or Inngest's
    error_contains: str | None = None  # in the last error, in any case
    failed: bool = False  # only rows with a failed attempt (pending: retrying)
    leased_at: int | None = None  # only rows a relay holds at this time (in flight)

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.status is not None:
            conditions.append(status_is(self.status))
        if self.name is not None:
            conditions.append(t.c.name == self.name)
        if self.since is not None:
            conditions.append(t.c.created_at >= self.since)
        if self.until is not None:
            conditions.append(t.c.created_at < self.until)
        if self.event_id is not None:
            # An Inngest id equal to its row's id is found by ``id``; the index of Inngest ids
            # holds only the others, and this clause is the one that lets a query read it.
            other_inngest_id = and_(t.c.inngest_id == self.event_id, t.c.inngest_id != t.c.id)
            conditions.append(or_(t.c.id == self.event_id, other_inngest_id))
        if self.error_contains is not None:
            # Stated apart so that the index of rows with an error serves the query.
            conditions.append(t.c.last_error.is_not(None))
            conditions.append(t.c.last_error.icontains(self.error_contains, autoescape=True))
        if self.failed:
            conditions.append(t.c.attempts > 0)
        if self.leased_at is not None:
            conditions.append(t.c.locked_until > self.leased_at)
        return conditions


class Cursor(NamedTuple):
    """Where a page of ``list_events`` ended: its last row's ``created_at`` and ``seq``."""

    created_at: int
    seq: int

    def __str__(self) -> str:
        return f"{self.created_at}.{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor ``str`` wrote; ``InvalidInput`` for anything else."""
        created_at, dot, seq = text.partition(".")
        if not (dot and created_at.isdigit() and seq.isdigit()):
            raise InvalidInput(f"{text[:40]!r} is not a page cursor")
        return cls(int(created_at), int(seq))
