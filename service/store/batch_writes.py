"""What the group commit hands a backend and gets back: idempotency claims, the events of a
batch (``EventShell``s whose data the statement completes, complete ``NewEvent``s), and what
the write did."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import orjson

from service.events.payload import EventShell, NewEvent

__all__ = [
    "CLAIM_FIELDS",
    "BatchStore",
    "Claim",
    "Held",
    "Written",
    "claims_arrays",
    "claims_json",
    "held_by_others",
    "not_ours",
    "unclaimed",
]


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


CLAIM_FIELDS = tuple(f.name for f in fields(Claim))


def claims_json(claims: Sequence[Claim]) -> str:
    """The claims as SQLite's ``claim_keys`` takes them: a JSON array of objects."""
    return orjson.dumps(list(claims)).decode()  # a dataclass as an object of its fields


def claims_arrays(claims: Sequence[Claim]) -> list[list[Any]]:
    """The claims as PostgreSQL's ``claim_keys`` takes them: one array per field, in order."""
    return [[getattr(claim, name) for claim in claims] for name in CLAIM_FIELDS]


def not_ours(claims: Sequence[Claim], ours: Iterable[Sequence[str]]) -> list[Claim]:
    """The claims whose key ``claim_keys`` did not give us (it named ``ours``)."""
    taken = {(caller, key) for caller, key in ours}
    return [claim for claim in claims if (claim.caller, claim.key) not in taken]


def held_by_others(claims: Sequence[Claim], answers: Iterable[Sequence[str]]) -> Held:
    """The claims whose key an earlier request holds, with the answers ``stored_answers`` gave
    (``caller, key, response`` rows)."""
    by_key = {(claim.caller, claim.key): claim for claim in claims}
    return {by_key[caller, key]: response for caller, key, response in answers}


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
