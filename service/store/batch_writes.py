"""What the group commit hands a backend and gets back: idempotency claims, the events of a
batch (``EventShell``s whose data the statement completes, complete ``NewEvent``s), and what
the write did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.events.payload import EventShell, NewEvent

__all__ = ["BatchStore", "Claim", "Held", "Written", "in_key_order", "unclaimed"]


@dataclass(frozen=True)
class Claim:
    """An ``Idempotency-Key`` one request wants, with the answer it will give if it gets it."""

    caller: str
    key: str
    event_id: str
    response: str
    created_at: int
    expires_at: int


# The claims whose idempotency key an earlier request holds, with that request's answer.
Held = dict[Claim, str]


@dataclass(frozen=True)
class Written:
    """What one group commit wrote: the claims an earlier request held (with its answers), and
    how many complete events were new (the others repeated events already in the outbox)."""

    held: Held = field(default_factory=dict)
    new_events: int = 0


def in_key_order(claims: Sequence[Claim]) -> list[Claim]:
    """The claims in the order every writer takes keys, so that two replicas claiming the same
    keys wait for one another instead of deadlocking."""
    return sorted(claims, key=lambda claim: (claim.caller, claim.key))


def unclaimed(shells: Sequence[EventShell], held: Held) -> Sequence[EventShell]:
    """The shells to insert: all but those whose idempotency key an earlier request holds."""
    if not held:
        return shells
    answered = {claim.event_id for claim in held}
    return [e for e in shells if e.id not in answered]


class BatchStore(Protocol):
    """Writes group commits: up to ``concurrency`` of them at once."""

    concurrency: int

    async def write(
        self, claims: Sequence[Claim], shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> Written:
        """In one transaction: claim the idempotency keys, insert the shells whose key was
        free (their data is the settings document as the same transaction reads it) and the
        complete events whose id is not stored yet; commit. Return the claims whose key was
        already held, with the stored answers, and how many complete events were new.
        Raises ``DatabaseUnavailable`` when the transaction did not commit."""

    async def open(self) -> None:
        """Connect ahead of the first batch, so that it does not wait for that; best effort:
        if the database is not there yet, the first batch tries again (and fails, 503)."""

    async def close(self) -> None:
        """Release the connection."""
