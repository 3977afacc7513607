"""Syncs an application's settings to Inngest through a transactional outbox.

``from service import send_event, EventRefused`` gives an app the helper that writes an event
in its own database transaction (``service.store.in_transaction``) and the error it
raises for an event the Event API would refuse; they are loaded only when asked for, so that
importing the package loads nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EventRefused", "send_event"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from service.store import in_transaction

        return getattr(in_transaction, name)
    raise AttributeError(f"module 'service' has no attribute {name!r}")
