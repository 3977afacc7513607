"""What the group commit's statements share on both databases: the columns, the settings
document read in the same statement, which events a batch still has to insert, and what a
batch's write tells its writer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from service.store.app_settings import EMPTY_DOCUMENT
from service.store.idempotency import Claim
from service.store.outbox import EventShell
from service.store.tables import APP_SETTINGS_ROW

# The claims whose idempotency key an earlier request holds, with that request's answer.
Held = dict[Claim, str]

COLUMNS = "id, name, payload, status, attempts, created_at, next_attempt_at"
# Complete events (``NewEvent``) also carry their Inngest environment.
EVENT_COLUMNS = f"{COLUMNS}, env"
# One row, read once per statement: the settings as this transaction sees them.
SETTINGS_DOCUMENT = (
    f"(SELECT coalesce((SELECT document FROM app_settings WHERE id = {APP_SETTINGS_ROW}),"
    f" '{EMPTY_DOCUMENT}') AS data) AS document"
)
# A complete event whose id is in the outbox already is the repeat of a send that committed
# (its id derives from the SDK's seed): it is left out, and the repeat answers the same ids.
ON_REPEAT = "ON CONFLICT (id) DO NOTHING"


@dataclass(frozen=True)
class Written:
    """What one group commit wrote: the claims an earlier request held (with its answers), and
    how many complete events were new (the others repeated events already in the outbox)."""

    held: Held = field(default_factory=dict)
    new_events: int = 0


def unclaimed(events: Sequence[EventShell], held: Held) -> Sequence[EventShell]:
    """The events to insert: all but those whose idempotency key an earlier request holds."""
    if not held:
        return events
    answered = {claim.event_id for claim in held}
    return [e for e in events if e.id not in answered]
