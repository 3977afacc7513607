"""Syncs an application's settings to Inngest through a transactional outbox.

``from service import send_event`` gives an app the helper that writes an event in its own
database transaction (``service.store.backends.in_transaction``); it is loaded only when asked
for, so that importing the package loads nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["send_event"]


def __getattr__(name: str) -> Any:
    if name == "send_event":
        from service.store.backends.in_transaction import send_event

        return send_event
    raise AttributeError(f"module 'service' has no attribute {name!r}")
