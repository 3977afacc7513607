"""A batch a relay holds: the rows of one claim, under their lease."""

from __future__ import annotations

from dataclasses import dataclass

from service.store.deliveries import ClaimedRow

__all__ = ["LeasedBatch"]


@dataclass(frozen=True)
class LeasedBatch:
    """The rows of one claim: the lease's name (``locked_by``), the rows in ``seq`` order, and
    when the claim was made (the relay clock's monotonic seconds), from which the lease's end
    follows."""

    lease: str
    rows: list[ClaimedRow]
    claimed_at: float
