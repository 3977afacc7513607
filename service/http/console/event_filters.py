"""The event list's filters as the console's form gives them, read into an ``EventFilter``
with a sentence for each value that does not make sense."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from service.events.ids import now_ms
from service.store.event_filter import Cursor, EventFilter
from service.store.statuses import DEAD, DELIVERED, PENDING
from service.timefmt import iso, parse_moment

__all__ = ["FIELDS", "STATES", "FilterForm"]

# The states an operator picks from: the outbox's own, and two kinds of pending rows.
IN_FLIGHT, RETRYING = "in_flight", "retrying"
STATES = (
    ("", "Any"),
    (PENDING, "Pending"),
    (IN_FLIGHT, "In flight"),
    (RETRYING, "Retrying"),
    (DELIVERED, "Delivered"),
    (DEAD, "Dead"),
)
FIELDS = ("state", "name", "since", "until", "id", "error")
MAX_FIELD = 256


@dataclass
class FilterForm:
    """The form's values as given (shown back in the form) and what they mean."""

    values: dict[str, str]
    where: EventFilter = field(default_factory=EventFilter)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, given: Mapping[str, str], now: int | None = None) -> FilterForm:
        values = {name: given.get(name, "").strip()[:MAX_FIELD] for name in FIELDS}
        form = cls(values)
        at = now_ms() if now is None else now
        since = form._moment("since", at)
        until = form._moment("until", at)
        if since is not None and until is not None and since >= until:
            form.problems.append("Since must be earlier than until.")
        state = values["state"]
        if state not in dict(STATES):
            form.problems.append(f"{state!r} is not a state.")
            state = ""
        status = PENDING if state in (IN_FLIGHT, RETRYING) else state or None
        form.where = EventFilter(
            status=status,
            name=values["name"] or None,
            since=since,
            until=until,
            event_id=values["id"] or None,
            error_contains=values["error"] or None,
            failed=state == RETRYING,
            leased_at=at if state == IN_FLIGHT else None,
        )
        return form

    def _moment(self, name: str, now: int) -> int | None:
        if not self.values[name]:
            return None
        try:
            return parse_moment(self.values[name], now)
        except ValueError as exc:
            self.problems.append(f"{name.capitalize()}: {exc}")
            return None

    def query(self, after: Cursor | None = None) -> str:
        """The URL query of these filters (and of the page after ``after``)."""
        pairs = [(name, value) for name, value in self.values.items() if value]
        if after is not None:
            pairs.append(("after", str(after)))
        return urlencode(pairs)

    def hidden(self) -> list[tuple[str, str]]:
        """The filters as a confirmation form's hidden fields, times made absolute: what is
        done is what was counted, however long the operator took to confirm."""
        moments = {"since": iso(self.where.since), "until": iso(self.where.until)}
        return [(name, moments.get(name) or value) for name, value in self.values.items() if value]
