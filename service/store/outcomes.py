"""What a relay learned about the rows of its batch, as the store records it (``deliveries.record``,
through each backend's statements)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BatchOutcome", "Burial", "Retry"]


@dataclass(frozen=True)
class Retry:
    """A row to try again at ``at`` (epoch ms) after ``error``; its first failure is now, unless
    it had failed before."""

    seq: int
    at: int
    error: str
    status_code: int | None = None  # Inngest's answer; None when none came


@dataclass(frozen=True)
class Burial:
    """A row that failed for good."""

    seq: int
    error: str
    status_code: int | None = None


@dataclass
class BatchOutcome:
    """What a relay learned about the rows it held; recorded in one transaction."""

    delivered: list[int] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    burials: list[Burial] = field(default_factory=list)
    # Rows handed back untouched (attempts unchanged), due at the given time: a wrong key.
    released: list[int] = field(default_factory=list)
    released_until: int = 0
